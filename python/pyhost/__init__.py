"""pyhost: Python web applications hosted inside Apache httpd by mod_pyhost."""

import glob
import os
import sysconfig

__version__ = "0.1.0"


class ModuleNotBuilt(RuntimeError):
    """mod_pyhost*.so is not next to the package (an sdist copy, a broken install)."""


def module_location():
    """Absolute path of the mod_pyhost shared object to name in LoadModule."""
    here = os.path.dirname(os.path.abspath(__file__))
    # An in-place (editable) tree can hold builds for several Pythons: prefer
    # the one built for this interpreter.
    exact = os.path.join(here, "mod_pyhost" + (sysconfig.get_config_var("EXT_SUFFIX") or ".so"))
    if os.path.isfile(exact):
        return exact
    found = sorted(glob.glob(os.path.join(here, "mod_pyhost*.so")))
    if not found:
        raise ModuleNotBuilt(
            "mod_pyhost*.so is not in %s: reinstall mod-pyhost with "
            "`pip install --no-cache-dir .` from a checkout, with apxs "
            "(apache2-dev / httpd-devel) installed" % here
        )
    return found[0]
