# Run by scripts/ci-clean as the container's command (bash -c): finishes making the container
# look like the machine, then does what CI does: a fresh clone of main, then .ci/run.
set -u

# What --privileged would give, done here because the engine cannot start a privileged container
# on the machine (its root lacks CAP_SYS_RESOURCE): a writable /sys and cgroup hierarchies, for
# tests that start network namespaces or a Docker engine of their own.
mount -o remount,rw /sys || echo "ci-clean: could not make /sys writable" >&2
for cgroup in $(awk '$3 == "cgroup" || $3 == "cgroup2" { print $2 }' /proc/self/mounts); do
  mount -o remount,bind,rw "$cgroup" || echo "ci-clean: could not make $cgroup writable" >&2
done

# The machine trusts its local CAs (mounted read-only from /usr/local/share/ca-certificates):
# without them HTTPS to PyPI fails its certificate check.
update-ca-certificates >/dev/null 2>&1 || echo "ci-clean: update-ca-certificates failed" >&2

# The engine exports HOSTNAME; the machine's environment has no such variable.
unset HOSTNAME

git clone -q /src /work/ci/main || exit 125
cd /work/ci/main || exit 125
echo "== ci-clean: CI=true bash .ci/run on $(git log -1 --format='%h %s')"
start=$(date +%s)
bash .ci/run </dev/null
rc=$?
echo "== ci-clean: .ci/run exited $rc after $(($(date +%s) - start)) s"
exit $rc
