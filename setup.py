"""The C part of the package: media._fastrtp, the per-packet RTP path (media/_fastrtp_src/).

Everything else is in pyproject.toml. The extension is optional: without a C
compiler and the Python headers the build still succeeds and the engine
relays media with the pure-Python path, which says so in its log at start.
"""

from setuptools import Extension, setup

SOURCES = ("module", "stats", "sender", "relay", "port", "place")

setup(
    ext_modules=[
        Extension(
            "media._fastrtp",
            [f"media/_fastrtp_src/{name}.c" for name in SOURCES],
            depends=["media/_fastrtp_src/fastrtp.h"],
            extra_compile_args=["-O2", "-std=c11", "-D_GNU_SOURCE"],
            optional=True,
        )
    ]
)
