"""``import metalab``: the public name of metalab-smk.

``metalab`` *is* the ``metalab_smk`` module (an alias in ``sys.modules``), so both import
names give the same objects and the same lazy loading.
"""

import sys

import metalab_smk

sys.modules[__name__] = metalab_smk
