# The CI machine's image, remade from Debian's packages for scripts/ci-clean: a debootstrap
# minbase of bookworm (BASE, imported by scripts/ci-clean) plus every apt package of the machine
# image (machine-packages.txt). Nothing else is installed: what .ci/run needs beyond this set it
# must install itself, as on a new CI machine. Build context: this folder plus sources/ (the
# machine's apt sources).
ARG BASE=hyperion-ci/base:bookworm
FROM ${BASE}

# The machine image was built as Debian's container images are: apt and dpkg set up alike (no
# service starts when its package is installed, no package caches, no translations, compressed
# indexes, no DEP-11 metadata), so .ci/run's own apt-get install behaves here as it does there.
RUN printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d \
 && echo 'force-unsafe-io' >/etc/dpkg/dpkg.cfg.d/docker-apt-speedup \
 && echo 'DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; }; Dir::Cache::pkgcache ""; Dir::Cache::srcpkgcache "";' >/etc/apt/apt.conf.d/docker-clean \
 && echo 'Acquire::GzipIndexes "true";' >/etc/apt/apt.conf.d/docker-gzip-indexes \
 && echo 'Acquire::Languages "none";' >/etc/apt/apt.conf.d/docker-no-languages \
 && echo 'Apt::AutoRemove::SuggestsImportant "false";' >/etc/apt/apt.conf.d/docker-autoremove-suggests \
 && echo 'Acquire::IndexTargets::deb::DEP-11 { DefaultEnabled "false"; }; Acquire::IndexTargets::deb::DEP-11-icons { DefaultEnabled "false"; }; Acquire::IndexTargets::deb::DEP-11-icons-small { DefaultEnabled "false"; }; Acquire::IndexTargets::deb::DEP-11-icons-large { DefaultEnabled "false"; }; Acquire::IndexTargets::deb::DEP-11-icons-hidpi { DefaultEnabled "false"; };' >/etc/apt/apt.conf.d/99no-dep11

# The machine's sources replace debootstrap's single line (which lacks the updates and security suites).
COPY sources/ /etc/apt/sources.list.d/
COPY machine-packages.txt /tmp/machine-packages.txt

# Install the list by name at the archive's current versions. Names the archive lacks (packages
# from other vendors' repositories) are skipped and kept in /var/log/ci-clean-skipped-packages.txt.
# Recommends stay off: the list already holds every package the machine has, recommended or not.
RUN set -e; rm -f /etc/apt/sources.list; apt-get update -qq; \
    apt-cache --generate pkgnames | sort -u >/tmp/archive-names; \
    grep -v '^#' /tmp/machine-packages.txt | sed '/^$/d' | sort -u >/tmp/wanted; \
    comm -23 /tmp/wanted /tmp/archive-names >/var/log/ci-clean-skipped-packages.txt; \
    echo "machine image: $(wc -l </tmp/wanted) packages listed; skipped, not in Debian's archive: $(tr '\n' ' ' </var/log/ci-clean-skipped-packages.txt)"; \
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $(comm -12 /tmp/wanted /tmp/archive-names) >/tmp/apt-install.log 2>&1; then \
        tail -n 60 /tmp/apt-install.log; exit 1; \
    fi; \
    echo "machine image: $(dpkg-query -W -f '${db:Status-Abbrev}\n' | grep -c '^ii') packages installed"; \
    apt-get clean; rm -rf /var/lib/apt/lists/* /tmp/machine-packages.txt /tmp/archive-names /tmp/wanted /tmp/apt-install.log

CMD ["bash"]
