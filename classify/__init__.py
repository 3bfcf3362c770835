"""Classification of audio feature tables."""
