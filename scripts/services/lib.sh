# Shared by the service scripts (sourced; expects $pidfile to be set by the caller).

# Print the PID recorded in $pidfile if that process is alive; fail otherwise.
running_pid() {
  [[ -f $pidfile ]] || return 1
  local pid; pid=$(cat "$pidfile")
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}
