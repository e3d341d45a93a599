#!/usr/bin/env bash
# The API reference check (the `docs` lane).
#
# Configures a tiny build tree (build/docs: no tests, no examples) with
# -DMPROC_BUILD_DOCS=ON and builds the mproc_docs target: Doxygen over the public
# headers with WARN_AS_ERROR=YES, so an undocumented public function, parameter or
# return value, or a broken reference, fails it (docs/Doxyfile.in).  If it fails,
# Doxygen runs once more with WARN_AS_ERROR=NO to list every warning, not just
# the first.
#
# Then it checks what Doxygen's warnings may miss: the manual says a C function
# is documented only if its file has a @file block, and Doxygen does not warn
# about the members of a file it does not document.  So every function declared
# MPROC_API in include/ must be in the generated XML with a brief description.
#
#   bash scripts/check-docs.sh          exit 0 when the reference builds clean
#
# The last line is "N passed, N failed": one per public function, plus one for
# the Doxygen build (failed counts each warning when it did not build).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

command -v doxygen >/dev/null || { echo "doxygen not found (scripts/deps.sh installs it)"; exit 1; }
command -v python3 >/dev/null || { echo "python3 not found"; exit 1; }

build=build/docs
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
passed=0
failed=0

echo "==> doxygen $(doxygen --version): configure $build"
if ! conf=$(cmake -S . -B "$build" "${generator[@]}" -DMPROC_BUILD_DOCS=ON \
       -DMPROC_BUILD_TESTS=OFF -DMPROC_BUILD_EXAMPLES=OFF -DMPROC_INSTALL=OFF 2>&1); then
  echo "$conf"
  echo "0 passed, 1 failed"
  exit 1
fi

echo "==> cmake --build $build --target mproc_docs"
out=$(cmake --build "$build" --target mproc_docs 2>&1)
rc=$?
echo "$out"
if (( rc == 0 )) && ! grep -q 'warning:' <<<"$out"; then
  passed=$((passed + 1))
  echo "ok   doxygen: no warnings"
else
  echo "FAIL doxygen stopped at a warning; all of them:"
  # A copy of the Doxyfile that reports every warning instead of stopping.
  all=$( { cat "$build/docs/Doxyfile"; echo "WARN_AS_ERROR = NO"; } \
         | (cd "$build/docs" && doxygen - 2>&1 >/dev/null) )
  echo "$all"
  n=$(grep -c 'warning:' <<<"$all")
  failed=$((failed + (n > 0 ? n : 1)))
fi

# Every MPROC_API function of the headers, documented in the XML output.
if [[ -f $build/docs/xml/index.xml ]]; then
  result=$(python3 - "$build/docs/xml" include/mproc.h include/mproc/*.h <<'PY'
import glob, os, re, sys
import xml.etree.ElementTree as ET

xml_dir, headers = sys.argv[1], sys.argv[2:]
declared = []
for h in headers:
    text = open(h, encoding="utf-8").read()
    for m in re.finditer(r"^MPROC_API\b[^(;]*?\b(mproc_\w+)\s*\(", text, re.M):
        declared.append((m.group(1), os.path.basename(h)))

documented = set()
for f in glob.glob(os.path.join(xml_dir, "*_8h.xml")):
    for md in ET.parse(f).iter("memberdef"):
        if md.get("kind") != "function":
            continue
        brief = "".join(md.find("briefdescription").itertext()).strip()
        if brief:
            documented.add(md.findtext("name"))

ok = bad = 0
for name, header in declared:
    if name in documented:
        ok += 1
    else:
        bad += 1
        print("FAIL %s (%s): not in the reference (no doc comment, or no @file)"
              % (name, header))
print("functions: %d documented of %d declared" % (ok, ok + bad))
print("COUNTS %d %d" % (ok, bad))
PY
  )
  grep -v '^COUNTS ' <<<"$result"
  read -r _ ok bad < <(grep '^COUNTS ' <<<"$result")
  passed=$((passed + ${ok:-0}))
  failed=$((failed + ${bad:-1}))
else
  echo "FAIL no XML output ($build/docs/xml/index.xml)"
  failed=$((failed + 1))
fi

echo "docs: the reference is in $build/docs/html/index.html"
echo "${passed} passed, ${failed} failed"
(( failed == 0 ))
