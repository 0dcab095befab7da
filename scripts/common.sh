# scripts/common.sh: sourced by scripts/check and scripts/quickstart.
# Installs the Debian packages weft needs (only the missing ones) and builds.

WEFT_PACKAGES="autoconf automake libtool pkg-config make gcc
  libopenmpi-dev openmpi-bin libzmq3-dev libhdf5-openmpi-dev hdf5-tools
  libconfig-dev libopenblas-dev check libsqlite3-dev libjansson-dev zlib1g-dev libdeflate-dev
  libpcre2-dev libutf8proc-dev nodejs npm
  python3 python3-h5py python3-zmq python3-numpy sqlite3 gnuplot-nox"

# Open MPI refuses root without these; CI runs as root.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

# install_packages PKG...: apt-get install whatever of PKG... is missing.
install_packages() {
    local missing=() p
    for p in "$@"; do
        # NodeSource's nodejs bundles npm and conflicts with Debian's npm package
        [ "$p" = npm ] && command -v npm >/dev/null && continue
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
            missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "weft: installing ${missing[*]}" >&2
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q </dev/null >&2
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        "${missing[@]}" </dev/null >&2
}

# build: autoreconf/configure only when needed, then make.
build() {
    if [ ! -x configure ] || [ configure.ac -nt configure ]; then
        autoreconf -fi
    fi
    if [ ! -f Makefile ] || [ configure -nt Makefile ]; then
        ./configure --enable-werror ${WEFT_CONFIGURE_FLAGS:-}
    fi
    make -j"$(nproc)"
}
