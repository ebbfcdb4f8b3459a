# bench/lib.sh - what Strata's bench scripts share (sourced; needs bash).
#
# wait_quiet: before a timed run, wait until the machine was under QUIET_PCT % busy (default
# 15, the shared runner's threshold) over one second, at most QUIET_MAX seconds (default 180;
# scripts may set their own before sourcing). Sets PRE_BUSY (last busy %) and QUIET_WAIT (s).
# sys_busy_ticks: the machine's busy CPU ticks so far (user+nice+system+irq+softirq+steal).

QUIET_PCT=${QUIET_PCT:-15}
QUIET_MAX=${QUIET_MAX:-180}
PRE_BUSY=0
QUIET_WAIT=0

sys_busy_ticks() { awk '/^cpu /{print $2+$3+$4+$7+$8+$9; exit}' /proc/stat; }
sys_ticks() { awk '/^cpu /{print $2+$3+$4+$7+$8+$9, $2+$3+$4+$5+$6+$7+$8+$9; exit}' /proc/stat; }

wait_quiet() {
  local t0 b0 a0 b1 a1; t0=$(date +%s); QUIET_WAIT=0
  while :; do
    read -r b0 a0 < <(sys_ticks); sleep 1; read -r b1 a1 < <(sys_ticks)
    PRE_BUSY=$(( (b1 - b0) * 100 / (a1 - a0 > 0 ? a1 - a0 : 1) ))
    QUIET_WAIT=$(( $(date +%s) - t0 ))
    (( PRE_BUSY < QUIET_PCT || QUIET_WAIT >= QUIET_MAX )) && break
    sleep 2
  done
}
