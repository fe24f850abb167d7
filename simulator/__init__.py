"""The simulator: virtual cards, a virtual PN532 on a pseudo-terminal, virtual handhelds running the real firmware."""
