"""Synthesis recipes: new items made from selected ones, admitted only through the same checks."""
