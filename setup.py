"""Build hook for the optional native accelerator ``ztone._speedups``.

All metadata lives in pyproject.toml. The extension is ``optional``: without a C
compiler or OpenSSL headers the build skips it and ztone runs on the pure-Python code.
"""

from glob import glob

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "ztone._speedups",
            ["src/ztone/_speedups.c"],
            depends=sorted(glob("src/ztone/_*.h")),  # the headers it includes (data plane, ...)
            libraries=["crypto"],
            optional=True,
            extra_compile_args=["-O3"],
        )
    ]
)
