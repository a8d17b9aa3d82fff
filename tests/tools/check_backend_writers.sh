#!/bin/bash
# Topology is the only writer of struct backend (include/pgwing/topology.h):
# compile every other src/*.c against a copy of the headers in which each
# member of struct backend is const. Any error or discarded-const warning
# printed is a write (or a pointer taken for writing) outside topology.c.
# Exits 1 when it finds one.
#
#   tests/tools/check_backend_writers.sh [SRCDIR [BUILDDIR]]
#
# SRCDIR defaults to this tree; BUILDDIR (default SRCDIR), where configure wrote
# include/pgwing/autoconfig.h.
set -euo pipefail
top=$(cd "${1:-$(dirname "$0")/../..}" && pwd)
build=$(cd "${2:-$top}" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp -r "$top/include" "$tmp/"
python3 - "$tmp/include/pgwing/topology.h" <<'PY'
import re, sys
p = sys.argv[1]
s = open(p).read()
i = s.index('struct backend {')
j = s.index('\n};', i)
out = []
for line in s[i:j].split('\n')[1:]:
    m = re.match(r'^\t([a-z][^;]*?)(\b[a-z_]+)((\[[^\]]*\])?;.*)$', line)
    if m:
        typ, name, rest = m.groups()[:3]
        typ = typ + 'const ' if typ.rstrip().endswith('*') else 'const ' + typ
        line = '\t' + typ + name + rest
    out.append(line)
open(p, 'w').write(s[:i] + 'struct backend {\n' + '\n'.join(out) + s[j:])
PY
found=0
for f in "$top"/src/*.c; do
	[ "$(basename "$f")" = topology.c ] && continue
	out=$(gcc -std=c11 -D_GNU_SOURCE -I"$tmp/include" -I"$build/include" \
		-I"$(pg_config --includedir)" \
		-fsyntax-only "$f" 2>&1 || true)
	if grep -E "error:|discards .const." <<<"$out"; then
		found=1
	fi
done
[ $found = 0 ] && echo "struct backend: no writer outside src/topology.c"
exit $found
