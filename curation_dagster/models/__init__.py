"""Choosing a device and loading models onto it, lazily and offline."""
