# Shared by the service scripts (sourced; expects $pidfile to be set by the caller).

# Print the PID recorded in $pidfile if that process is alive (not a zombie); fail otherwise.
running_pid() {
  [[ -f $pidfile ]] || return 1
  local pid; pid=$(cat "$pidfile")
  [[ $pid =~ ^[0-9]+$ ]] && ! exited "$pid" && echo "$pid"
}

# True once PID has exited. A zombie has (only its parent's wait is missing), though kill -0
# still reaches it; /proc/PID/stat's state field follows the command name's closing ')'.
exited() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
  stat=${stat##*) }
  [[ ${stat%% *} == Z ]]
}

# wait_exited PID SECONDS: wait until PID has exited, or fail after SECONDS. A signalled
# process is not gone when kill returns; callers that report it stopped must see it gone.
wait_exited() {
  local deadline=$((SECONDS + $2))
  until exited "$1"; do
    ((SECONDS < deadline)) || return 1
    sleep 0.05
  done
}
