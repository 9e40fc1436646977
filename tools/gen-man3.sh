#!/bin/sh
# gen-man3.sh HEADER VERSION > PAGE.3
# A section-3 man page made from one public header, so the pages cannot
# drift from the code: NAME and DESCRIPTION from the header's opening
# comment, SYNOPSIS from its function prototypes, and the whole annotated
# header (types, macros, every prototype with the comment above it) under
# DECLARATIONS.
set -eu
hdr=$1
version=${2:-0}
name=$(basename "$hdr" .h)

awk -v name="$name" -v version="$version" '
function esc(s) {
	gsub(/\\/, "\\e", s)
	gsub(/^\./, "\\\\\\&.", s)
	gsub(/^'"'"'/, "\\\\\\&'"'"'", s)
	return s
}
# The opening comment: everything up to the first line that closes it.
NR == 1 && /SPDX/ { next }
!done_top && /^\/\*/ { in_top = 1 }
in_top {
	line = $0
	sub(/^\/\*+ ?/, "", line); sub(/^ \*\/?/, "", line); sub(/^ /, "", line)
	sub(/ ?\*\/$/, "", line)
	if ($0 ~ /\*\//) { in_top = 0; done_top = 1 }
	if (title_open) {
		if (line == "") title_open = 0
		else { title = title " " line; if (line ~ /\.$/) title_open = 0; next }
	}
	if (line ~ /^libqmigrate/ && !title) {
		title = line; sub(/^libqmigrate *[-—:]* */, "", title)
		title_open = title !~ /\.$/
		next
	}
	top[ntop++] = line
	next
}
done_top { body[nbody++] = $0 }
# Prototypes: a line that declares a qmig_ function (possibly over lines).
done_top && !in_proto && /^[a-z].*[ *]qmig_[a-z0-9_]+\(/ { in_proto = 1; proto = "" }
in_proto {
	p = $0; sub(/^[ \t]+/, " ", p); proto = proto p
	if ($0 ~ /;/) { protos[nprotos++] = proto; in_proto = 0 }
}
END {
	if (!title) title = "part of libqmigrate"
	full = title
	if ((k = index(title, ". ")) > 0) title = substr(title, 1, k)
	printf ".TH %s 3 \"\" \"libqmigrate %s\" \"libqmigrate\"\n", toupper(name), version
	print ".SH NAME"
	printf "%s \\- %s\n", name, esc(title)
	print ".SH SYNOPSIS"
	print ".nf"
	print ".B #include <qmigrate/qmigrate.h>"
	print ".PP"
	for (i = 0; i < nprotos; i++) printf ".B \"%s\"\n", esc(protos[i])
	print ".fi"
	print ".PP"
	print "Link with \\fB$(pkg-config \\-\\-libs libqmigrate)\\fR."
	print ".SH DESCRIPTION"
	full = toupper(substr(full, 1, 1)) substr(full, 2)
	print esc(full)
	print ".PP"
	para = 0
	for (i = 0; i < ntop; i++) {
		if (top[i] == "") { if (para) print ".PP"; para = 0; continue }
		print esc(top[i]); para = 1
	}
	print ".SH DECLARATIONS"
	print "The header, with the comment that documents each declaration:"
	print ".PP"
	print ".nf"
	for (i = 0; i < nbody; i++) {
		l = body[i]
		if (l ~ /^#(ifndef|define|endif|ifdef|include|if|else)/ && l !~ /^#define QMIG_[A-Z_]+(_INIT|_VERSION|_MAX|_FORMAT)/) continue
		if (l ~ /^extern "C"|^}$/) continue
		gsub(/\t/, "        ", l)
		print esc(l)
	}
	print ".fi"
	print ".SH ERRORS"
	print "Functions that can fail return a negative errno value; see"
	print ".BR qmigrate (3)"
	print "for the rules every function follows."
	print ".SH SEE ALSO"
	print ".BR qmigrate (3),"
	print ".BR qmigrate (1)"
}
' "$hdr"
