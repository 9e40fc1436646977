#!/bin/sh
# The layout rules of docs/ARCHITECTURE.md ("The engine's layout"):
#  1. a folder of engine/ is seen from outside only through its face,
#     engine/F/F.h: an include of "F/other.h" from anywhere but engine/F/
#     fails, and so does an include that climbs out with "../";
#  2. engine/core/ is the bottom: it includes no other folder of engine/;
#  3. the folders' includes form no circle;
#  4. no circle of files: with the library built (build/obj), the calls
#     between the object files of engine/, qmp/ and transport/ (nm: what one file uses
#     that another defines) form no loop.
# Uses only sh, grep, sed, awk, tsort and nm.
cd "$(dirname "$0")/.." || exit 1
bad=0
folders=$(cd engine && for d in */; do echo "${d%/}"; done)
is_folder() { echo "$folders" | grep -qx "$1"; }

# 1 and 2: every quoted include of the tree's C sources and headers.
edges=$(mktemp)
objedges=$(mktemp)
trap 'rm -f "$edges" "$objedges"' EXIT
for f in $(find engine qmp transport tools tests bench examples -name '*.[ch]' | sort); do
	case $f in engine/*/*) own=$(echo "$f" | cut -d/ -f2) ;; *) own= ;; esac
	grep -n '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$f" |
		sed 's/^\([0-9]*\):.*"\(.*\)".*/\1 \2/' >"$edges.inc"
	while read -r line inc; do
		case $inc in
		../*|*/../*)
			case $f in
			# The one left: the stamp verifier reads the tiny guest's
			# layout until the test guests leave the library.
			engine/guest/verify_tiny.c) ;;
			engine/*|qmp/*|transport/*)
				echo "FAIL: $f:$line: #include \"$inc\" reaches outside the library's folders"
				bad=1 ;;
			esac
			continue ;;
		*/*) ;;
		*) continue ;;
		esac
		dir=${inc%%/*} base=${inc#*/}
		is_folder "$dir" || continue
		[ "$dir" = "$own" ] && continue
		if [ "$base" != "$dir.h" ]; then
			echo "FAIL: $f:$line: #include \"$inc\": engine/$dir/ is seen only through its face $dir/$dir.h"
			bad=1
		fi
		if [ "$own" = core ]; then
			echo "FAIL: $f:$line: engine/core/ is the bottom and includes no other folder ($inc)"
			bad=1
		fi
		[ -n "$own" ] && echo "$own $dir" >>"$edges"
	done <"$edges.inc"
	rm -f "$edges.inc"
done

# 3: the folders' include graph has no circle.
if ! sort -u "$edges" | tsort >/dev/null 2>"$edges.err"; then
	echo "FAIL: the folders of engine/ include each other in a circle:"
	cat "$edges.err"
	bad=1
fi
rm -f "$edges.err"

# 4: the calls between engine/'s object files, when they are built.
objs=$({ find build/obj/engine -mindepth 2 -name '*.o'; find build/obj/qmp build/obj/transport -name '*.o'; } 2>/dev/null | sort |
	while read -r o; do s=${o#build/obj/}; [ -f "${s%.o}.c" ] && echo "$o"; done)
if [ -n "$objs" ]; then
	nm -A $objs 2>/dev/null | awk '
		{ split($1, p, ":"); f = p[1]; sub("^build/obj/", "", f); sub("\\.o$", "", f) }
		NF == 3 && $2 ~ /^[TDBR]$/ { def[$3] = f }
		NF == 2 && $1 ~ /:$/ { }
		$(NF - 1) == "U" { use[f, $NF] = 1 }
		END { for (k in use) { split(k, q, SUBSEP); if ((q[2] in def) && def[q[2]] != q[1]) print q[1], def[q[2]] } }
	' | sort -u >"$objedges"
	if ! tsort "$objedges" >/dev/null 2>"$objedges.err"; then
		echo "FAIL: files of engine/, qmp/ or transport/ call each other in a circle:"
		cat "$objedges.err"
		bad=1
	fi
	rm -f "$objedges.err"
	nfiles=$(echo "$objs" | wc -l)
else
	echo "note: the library is not built: the circle-of-files check (4) was skipped"
	nfiles=0
fi

[ $bad = 0 ] || exit 1
echo "ok: $(echo "$folders" | wc -l) folders of engine/ seen only through their faces, no circle of folders, no circle among $nfiles files"
