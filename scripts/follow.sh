# Shell helpers for driving rlscale stages that run with --follow (see README, "Long-running
# stages"): a batch is sent with its end record, and an answer is read exactly, up to its own.
# Sourced by scripts/demo.sh; tests/test_follow_shell.py drives them against real stages.

# end_record N: the end-of-stream record that closes a batch of N records.
end_record() { printf '{"rlscale_end":{"tool":"demo","records":%d}}\n' "$1"; }

# send_batch FD FILE: send FILE's records to a stage's input FD as one batch; fails (instead of
# the caller being killed by SIGPIPE) when the stage is gone.
send_batch() { ( { cat "$2"; end_record "$(grep -c . "$2")"; } >&"$1" ); }

# one_answer N FILE: copy a stage's answer from stdin to FILE, up to and including the end
# record that closes it; fail unless the stage ended it, counting N records, and N arrived.
# (sed -u reads one byte at a time, so it never takes a line of the next answer; awk and head
# read ahead, and mawk waits to fill its buffer: the next answer comes only after this one.)
one_answer() {
    sed -u '/^{"rlscale_end"/q' > "$2"
    [[ $(tail -n 1 "$2") == '{"rlscale_end":'*"\"records\":$1}}" ]] \
        && (($(wc -l < "$2") == $1 + 1))
}
