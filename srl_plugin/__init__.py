"""SRL, SlotContrast and VideoSAUR for unsupervised video object-centric learning."""

__version__ = "0.1.0"
