"""Vectors of items: text embeddings (`text.py`), CLIP image embeddings (`image.py`), both stored in the
lake and reused, and k-means over them (`kmeans.py`)."""
