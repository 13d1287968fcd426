# Shared by the infra/ensure-*.sh scripts (sourced, not run): install Debian packages with
# apt-get, non-interactively, without letting a package start its own daemon.
#
#   apt_install PACKAGE...   as root: policy-rc.d forbids service starts for the duration,
#                            the package lists are refreshed only when the install needs it
#
# The caller defines log() and die() and checks first that it runs as root with apt-get.

apt_install() {
    local policy=/usr/sbin/policy-rc.d created_policy="" rc=0
    # invoke-rc.d and deb-systemd-invoke both ask policy-rc.d; 101 means "action forbidden".
    # Only a policy file created here is removed again.
    if [[ ! -e "$policy" ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod 0755 "$policy"
        created_policy=1
    fi
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -q --no-install-recommends "$@"; then
        apt-get update -q
        apt-get install -y -q --no-install-recommends "$@" || rc=$?
    fi
    if [[ -n "$created_policy" ]]; then rm -f "$policy"; fi
    return "$rc"
}
