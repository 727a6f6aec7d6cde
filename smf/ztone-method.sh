#!/bin/sh
#
# SMF method for svc:/network/ztone (contract model).
#
#   start: remove stale datalinks with ztone's names, start "ztone -d <home>",
#          wait until its local API answers (ztone-cli info), exit 0.
#   stop:  stop the daemon (SIGTERM, SIGKILL after a grace period), then remove
#          the datalinks with ztone's names.
#
# The daemon itself rejoins the networks in <home>/networks.d.
# Configuration: service properties config/home, config/daemon, config/cli
# (svcprop), else the environment (ZTONE_HOME, ZTONE_BIN, ZTONE_CLI), else defaults.
# ZTONE_ILLUMOS_SBIN (or ZTONE_DLADM / ZTONE_IFCONFIG) points at other dladm and
# ifconfig commands, as ztone itself does (the OmniOS simulation uses this).

LC_ALL=C
export LC_ALL

if [ -f /lib/svc/share/smf_include.sh ]; then
	# shellcheck source=/dev/null
	. /lib/svc/share/smf_include.sh
fi
EXIT_OK=${SMF_EXIT_OK:-0}
EXIT_FATAL=${SMF_EXIT_ERR_FATAL:-95}
EXIT_CONFIG=${SMF_EXIT_ERR_CONFIG:-96}

prop() {
	value=""
	if [ -n "${SMF_FMRI:-}" ] && command -v svcprop >/dev/null 2>&1; then
		value=$(svcprop -p "config/$1" "$SMF_FMRI" 2>/dev/null) || value=""
	fi
	if [ -z "$value" ]; then
		value=$2
	fi
	printf '%s\n' "$value"
}

ZTONE_HOME=${ZTONE_HOME:-$(prop home /var/lib/zerotier-one)}
ZTONE_BIN=${ZTONE_BIN:-$(prop daemon /opt/ztone/bin/ztone)}
ZTONE_CLI=${ZTONE_CLI:-$(prop cli /opt/ztone/bin/ztone-cli)}
START_WAIT=${ZTONE_START_WAIT:-60}
STOP_WAIT=${ZTONE_STOP_WAIT:-30}

if [ -n "${ZTONE_ILLUMOS_SBIN:-}" ]; then
	DLADM=${ZTONE_DLADM:-$ZTONE_ILLUMOS_SBIN/dladm}
	IFCONFIG=${ZTONE_IFCONFIG:-$ZTONE_ILLUMOS_SBIN/ifconfig}
else
	DLADM=${ZTONE_DLADM:-/usr/sbin/dladm}
	IFCONFIG=${ZTONE_IFCONFIG:-/usr/sbin/ifconfig}
fi
PIDFILE=$ZTONE_HOME/zerotier-one.pid

log() {
	printf 'ztone-method: %s\n' "$*" >&2
}

# ztone's names: zt + 8 base-32 characters + role digit (0 visible, 1 backend,
# 2 etherstub); see src/ztone/osdep/illumos/names.py. Nothing else is touched.
own_link() {
	case "$1" in
	zt[a-z2-7][a-z2-7][a-z2-7][a-z2-7][a-z2-7][a-z2-7][a-z2-7][a-z2-7][012])
		return 0 ;;
	esac
	return 1
}

# One listing of every datalink with its class, as the daemon's own cleanup reads
# it (show-link documents -p -o; show-vnic and show-etherstub do not list -o in
# their usage). VNICs go first: an etherstub with VNICs cannot be deleted.
cleanup_links() {
	if ! listing=$("$DLADM" show-link -p -o link,class 2>&1); then
		log "cannot list datalinks, stale links not removed: $listing"
		return 0
	fi
	for class in vnic etherstub; do
		for link in $(printf '%s\n' "$listing" | sed -n "s/^\([^:]*\):$class\$/\1/p"); do
			own_link "$link" || continue
			if [ "$class" = vnic ]; then
				"$IFCONFIG" "$link" inet6 unplumb >/dev/null 2>&1
				"$IFCONFIG" "$link" unplumb >/dev/null 2>&1
				if "$DLADM" delete-vnic -t "$link"; then
					log "removed VNIC $link"
				else
					log "could not remove VNIC $link"
				fi
			elif "$DLADM" delete-etherstub -t "$link"; then
				log "removed etherstub $link"
			else
				log "could not remove etherstub $link"
			fi
		done
	done
}

daemon_pid() {
	[ -r "$PIDFILE" ] || return 1
	pid=$(cat "$PIDFILE" 2>/dev/null) || return 1
	case "$pid" in
	'' | *[!0-9]*) return 1 ;;
	esac
	kill -0 "$pid" 2>/dev/null || return 1
	printf '%s\n' "$pid"
}

api_answers() {
	"$ZTONE_CLI" "-D$ZTONE_HOME" info >/dev/null 2>&1
}

start() {
	if pid=$(daemon_pid); then
		log "already running (pid $pid)"
		return "$EXIT_OK"
	fi
	if [ ! -x "$ZTONE_BIN" ]; then
		log "$ZTONE_BIN is missing (set config/daemon)"
		return "$EXIT_CONFIG"
	fi
	mkdir -p "$ZTONE_HOME" || return "$EXIT_CONFIG"
	cleanup_links
	# the daemon must not inherit the method's SMF_* variables
	if ! (unset SMF_FMRI SMF_METHOD SMF_RESTARTER SMF_ZONENAME; exec "$ZTONE_BIN" -d "$ZTONE_HOME"); then
		log "$ZTONE_BIN -d $ZTONE_HOME failed"
		return "$EXIT_FATAL"
	fi
	waited=0
	while [ "$waited" -lt "$START_WAIT" ]; do
		if api_answers; then
			log "started, API answers (home $ZTONE_HOME)"
			return "$EXIT_OK"
		fi
		sleep 1
		waited=$((waited + 1))
	done
	log "the API did not answer within $START_WAIT s"
	return "$EXIT_FATAL"
}

stop() {
	if pid=$(daemon_pid); then
		kill -TERM "$pid" 2>/dev/null
		waited=0
		while kill -0 "$pid" 2>/dev/null && [ "$waited" -lt "$STOP_WAIT" ]; do
			sleep 1
			waited=$((waited + 1))
		done
		if kill -0 "$pid" 2>/dev/null; then
			log "pid $pid did not stop within $STOP_WAIT s: SIGKILL"
			kill -KILL "$pid" 2>/dev/null
			sleep 1
		fi
	fi
	cleanup_links
	return "$EXIT_OK"
}

case "${1:-}" in
start)
	start
	;;
stop)
	stop
	;;
restart)
	stop
	start
	;;
*)
	printf 'usage: %s start|stop|restart\n' "$0" >&2
	exit "$EXIT_CONFIG"
	;;
esac
exit $?
