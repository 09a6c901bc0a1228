# SPDX-License-Identifier: GPL-2.0
# Sourced: apt_private DIR LINE... sets the array APT_PRIVATE to apt
# options that read only the sources.list lines LINE (e.g. "deb URI
# trixie-backports main") with lists and cache under DIR, never the
# machine's own sources, state or lock, and updates those lists.  The
# mirror is the Debian mirror this machine's apt already uses.

debian_mirror() {
	local m
	m=$(apt-get indextargets --format '$(REPO_URI)' 2>/dev/null |
		grep -m1 -E '/debian/?$' || true)
	m=${BASE_MIRROR:-${m:-http://deb.debian.org/debian/}}
	echo "${m%/}"
}

apt_private() {
	local d=$1
	shift
	mkdir -p "$d/lists/partial" "$d/cache/archives/partial"
	printf '%s\n' "$@" >"$d/sources.list"
	APT_PRIVATE=(-o Dir::Etc::SourceList="$d/sources.list"
		-o Dir::Etc::SourceParts=/dev/null
		-o Dir::State::Lists="$d/lists"
		-o Dir::Cache="$d/cache"
		-o Dir::State::status=/dev/null
		-o Debug::NoLocking=1
		-o APT::Sandbox::User="$(id -un)")
	apt-get "${APT_PRIVATE[@]}" -qq update >&2
}
