"""``import metalab``: the public name of metalab-smk (re-exports ``metalab_smk``)."""

from metalab_smk import *  # noqa: F403
from metalab_smk import __all__, __version__  # noqa: F401
