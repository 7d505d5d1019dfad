"""lictools: count floating license seats the way vendor license managers count them."""

__version__ = "0.1.0"
