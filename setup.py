"""Build mod_pyhost: every module/*.c becomes one Apache module, installed as
python/pyhost/mod_pyhost<EXT_SUFFIX> so `pyhost module-location` can find it.

Compiler flags come from apxs (the same ones `apxs -c` would use); the module
links libpython explicitly because Apache, not python, is the host process.
"""

import glob
import os
import shutil
import subprocess
import sys
import sysconfig

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))
MODULE_NAME = "pyhost.mod_pyhost"
ASGI_NAME = "pyhost._asgi"


def fail(message):
    # One line a person can act on; pip shows it at the end of its output.
    sys.stderr.write("pyhost build: %s\n" % message)
    raise SystemExit(1)


def find_apxs():
    apxs = os.environ.get("APXS")
    if apxs:
        if not os.access(apxs, os.X_OK):
            fail("APXS=%s is not an executable file" % apxs)
        return apxs
    for name in ("apxs", "apxs2"):
        found = shutil.which(name)
        if found:
            return found
    fail(
        "apxs not found: install apache2-dev (Debian/Ubuntu) or httpd-devel "
        "(Fedora/RHEL), or set APXS=/path/to/apxs"
    )


def apxs_query(apxs, name):
    try:
        out = subprocess.run(
            [apxs, "-q", name], check=True, capture_output=True, text=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return ""
    return out.strip()


def apr_include_flags(apxs):
    incdir = apxs_query(apxs, "APR_INCLUDEDIR")
    if incdir and os.path.isdir(incdir):
        return ["-I" + incdir]
    for tool in ("apr-1-config", "apr-config"):
        path = shutil.which(tool)
        if path:
            out = subprocess.run(
                [path, "--includes"], capture_output=True, text=True
            ).stdout
            if out.strip():
                return out.split()
    fail("cannot find APR headers: neither `apxs -q APR_INCLUDEDIR` nor apr-1-config --includes answered")


def c_string(value):
    return '"%s"' % value.replace("\\", "\\\\").replace('"', '\\"')


def libpython_flags():
    if not sysconfig.get_config_var("Py_ENABLE_SHARED"):
        fail(
            "%s has no shared libpython (built without --enable-shared), which an "
            "Apache module must link against; use a Python that has one (e.g. "
            "Debian's /usr/bin/python3, or pyenv with "
            "PYTHON_CONFIGURE_OPTS=--enable-shared)" % sys.executable
        )
    libdir = sysconfig.get_config_var("LIBDIR")
    # LDVERSION carries the ABI flags: "3.14t" for a free-threaded build,
    # whose library is libpython3.14t.so. Py_GIL_DISABLED comes with that
    # build's pyconfig.h; module/compat.h handles the rest.
    ldversion = sysconfig.get_config_var("LDVERSION") or sysconfig.get_config_var(
        "VERSION"
    )
    # setuptools links libpython only on Android/Cygwin; an Apache module is
    # loaded into a process that has no libpython, so it has to name it, and
    # the rpath lets a Python outside the linker's path be found at LoadModule.
    return ["-L" + libdir, "-lpython" + ldversion, "-Wl,-rpath," + libdir]


class BuildApacheModule(build_ext):
    def finalize_options(self):
        super().finalize_options()
        # Object files and the .so in build/ look up to date even when they
        # were built for another Python with the same version tag (pyenv 3.11
        # vs /usr/bin/python3.11): always rebuild, it takes seconds.
        self.force = True

    def run(self):
        super().run()
        # In-place builds (pip install -e .) build into build/ and copy the
        # extension back; the build info has to follow it.
        if self.inplace and getattr(self, "build_info", None):
            package_dir = self.get_finalized_command("build_py").get_package_dir("pyhost")
            self.copy_file(self.build_info, os.path.join(package_dir, "_buildinfo.py"))

    def build_extensions(self):
        for ext in self.extensions:
            if ext.name == MODULE_NAME:
                self.configure_apache_module(ext)
        super().build_extensions()
        self.write_build_info()

    def configure_apache_module(self, ext):
        if not ext.sources:
            fail("no C sources in module/: nothing to build")
        apxs = find_apxs()
        includedir = apxs_query(apxs, "INCLUDEDIR")
        if not includedir or not os.path.isfile(os.path.join(includedir, "httpd.h")):
            fail(
                "%s -q INCLUDEDIR gave %r, which has no httpd.h: install "
                "apache2-dev (Debian/Ubuntu) or httpd-devel (Fedora/RHEL)"
                % (apxs, includedir)
            )
        ext.include_dirs = [os.path.join(HERE, "module"), includedir] + ext.include_dirs
        ext.extra_compile_args = (
            apxs_query(apxs, "EXTRA_CPPFLAGS").split()
            + apr_include_flags(apxs)
            + ["-Wall", "-Wextra", "-Werror"]
            + ext.extra_compile_args
        )
        ext.define_macros = ext.define_macros + [
            ("PYH_PYTHON_HOME", c_string(sys.base_prefix))
        ]
        ext.extra_link_args = libpython_flags() + ext.extra_link_args
        self.apxs = apxs

    def write_build_info(self):
        # Lets `pyhost check` say which Python the module was built for
        # without loading it.
        target = os.path.join(
            os.path.dirname(self.get_ext_fullpath(MODULE_NAME)), "_buildinfo.py"
        )
        self.build_info = target
        with open(target, "w") as f:
            f.write('"""Written by setup.py when mod_pyhost was built."""\n')
            f.write("PYTHON_HOME = %r\n" % sys.base_prefix)
            f.write("PYTHON_VERSION = %r\n" % ("%d.%d" % sys.version_info[:2]))
            f.write("LIBDIR = %r\n" % sysconfig.get_config_var("LIBDIR"))
            f.write("FREE_THREADED = %r\n"
                    % bool(sysconfig.get_config_var("Py_GIL_DISABLED")))
            f.write("APXS = %r\n" % getattr(self, "apxs", None))


def module_sources():
    # Relative paths: setuptools puts them into the sdist and build/ as is.
    return sorted(
        os.path.relpath(p, HERE) for p in glob.glob(os.path.join(HERE, "module", "*.c"))
    )


def asgi_extension():
    # The ASGI bridge, Cython (DESIGN rule 7). It shares only
    # module/asgi_api.h with mod_pyhost: no Apache headers needed.
    from Cython.Build import cythonize

    ext = Extension(
        ASGI_NAME,
        sources=["python/pyhost/_asgi.pyx"],
        include_dirs=["module"],
        # Module state and heap types (per-interpreter globals and
        # classes), so that every application group imports its own copy;
        # without them a Cython module refuses a second interpreter (or, its
        # static types shared, crashes one with its own GIL). The
        # subinterpreters_compatible directive (in _asgi.pyx) declares the
        # support only with module state on.
        define_macros=[("CYTHON_USE_MODULE_STATE", "1"),
                       ("CYTHON_USE_TYPE_SPECS", "1")],
        depends=["module/asgi_api.h", "python/pyhost/_asgi.pxd",
                 "python/pyhost/includes/asgi.pxd"],
    )
    return cythonize(
        [ext],
        include_path=["python"],
        compiler_directives={"language_level": 3},
        quiet=True,
    )


setup(
    ext_modules=asgi_extension() + [
        Extension(
            MODULE_NAME,
            sources=module_sources(),
            # zlib: permessage-deflate in module/websocket.c
            libraries=["z"],
            depends=sorted(
                os.path.relpath(p, HERE)
                for p in glob.glob(os.path.join(HERE, "module", "*.h"))
            ),
        )
    ],
    cmdclass={"build_ext": BuildApacheModule},
)
