# bench/lib.sh: shell helpers for the benchmark scripts (sourced).

log() { echo "bench: $*" >&2; }
die() { log "$*"; exit 1; }

# ensure_packages installs, as root on Debian, the packages whose command
# or file is missing. Arguments: "package:command-or-/path" ...
ensure_packages() {
	local missing=() spec pkg what
	for spec in "$@"; do
		pkg=${spec%%:*} what=${spec#*:}
		if [[ $what == /* ]]; then
			[[ -e $what ]] || missing+=("$pkg")
		else
			command -v "$what" >/dev/null 2>&1 || missing+=("$pkg")
		fi
	done
	((${#missing[@]})) || return 0
	if [[ ${BENCH_NO_INSTALL:-} == 1 || $(id -u) != 0 ]] || ! command -v apt-get >/dev/null; then
		log "missing packages (not installing): ${missing[*]}"
		return 0
	fi
	log "installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	# Keep the packages' own services (lighttpd, nginx, MariaDB, PHP-FPM)
	# from starting: the benchmarks run their own instances.
	local policy=
	if [[ ! -e /usr/sbin/policy-rc.d ]]; then
		policy=/usr/sbin/policy-rc.d
		printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy"
	fi
	apt-get update -qq >&2 || true
	if ! apt-get install -y -qq "${missing[@]}" >&2; then
		for pkg in "${missing[@]}"; do
			apt-get install -y -qq "$pkg" >&2 || log "apt-get install $pkg failed"
		done
	fi
	[[ -z $policy ]] || rm -f "$policy"
}

# children_of prints the pids whose parent is $1.
children_of() {
	cat /proc/[0-9]*/stat 2>/dev/null | awk -v p="$1" '$4 == p { print $1 }'
}

# rss_kib prints the mean VmRSS, in KiB, of the pids given.
rss_kib() {
	local pid total=0 n=0 kb
	for pid in "$@"; do
		kb=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status" 2>/dev/null || true)
		[[ -n $kb ]] || continue
		total=$((total + kb)) n=$((n + 1))
	done
	((n)) && echo $((total / n)) || echo 0
}

# cpu_ticks prints the CPU time, user and system, of the pids given, in
# clock ticks (getconf CLK_TCK a second): the servers' own cost of a
# measurement, which other load on the machine does not inflate.
cpu_ticks() {
	local pid sum=0 t
	for pid in "$@"; do
		t=$(awk '{ print $14 + $15 }' "/proc/$pid/stat" 2>/dev/null || true)
		sum=$((sum + ${t:-0}))
	done
	echo "$sum"
}

# gobuild OUT [go build flags...] PKG builds PKG into OUT as `make install`
# installs a program: written by the linker elsewhere, then copied into
# place. The linker's own output can sit in the page cache in 2 MiB pages,
# which each process maps whole, and the RSS column would measure that.
gobuild() {
	local out=$1
	shift
	(cd "$REPO" && go build -o "$out.linked" "$@") || return 1
	install -m 0755 "$out.linked" "$out" && rm -f "$out.linked"
}
