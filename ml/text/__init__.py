"""Text vectors of items: the sentence encoder (all-MiniLM-L6-v2) that synthesis and models share."""
