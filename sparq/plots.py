"""The report's figures: matplotlib without a display (Agg), one size and resolution for every PNG."""

__all__ = ["figure", "save"]


def figure(width=7.0, height=4.0, **kwargs):
    """``(fig, axes)`` of a ``width`` x ``height`` inch figure; ``kwargs`` go to ``plt.subplots``."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt.subplots(figsize=(width, height), **kwargs)


def save(fig, path):
    """Write ``fig`` to the PNG ``path`` and close it; return ``path``."""
    import matplotlib.pyplot as plt
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
