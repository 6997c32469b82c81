"""Notifications: the right escape sequences, and nothing injectable."""

from carexpert.notify import notification_sequence, osc9, osc777, run_event_message, tmux_passthrough


def test_osc_sequences_have_the_documented_shape():
    assert osc9("run done") == "\x1b]9;run done\x07"
    assert osc777("carexpert", "run done") == "\x1b]777;notify;carexpert;run done\x07"


def test_control_characters_and_separators_cannot_be_injected():
    sequence = osc777("t\x1b]0;pwned\x07", "a;b\x1b[2J")
    assert sequence.count("\x1b") == 1 and sequence.count("\x07") == 1
    assert sequence == "\x1b]777;notify;t ]0,pwned ;a,b [2J\x07"


def test_tmux_wraps_and_doubles_escapes():
    wrapped = tmux_passthrough(osc9("x"))
    assert wrapped == "\x1bPtmux;\x1b\x1b]9;x\x07\x1b\\"
    assert notification_sequence("t", "b", desktop=True, bell=False, in_tmux=True).startswith("\x1bPtmux;")


def test_opt_in_only():
    assert notification_sequence("t", "b", desktop=False, bell=False) == ""
    assert notification_sequence("t", "b", desktop=False, bell=True) == "\x07"
    both = notification_sequence("t", "b", desktop=True, bell=True, in_tmux=False)
    assert "\x1b]9;" in both and "\x1b]777;" in both and both.endswith("\x07")


def test_only_terminal_states_notify():
    assert run_event_message("r1", "running") is None
    assert run_event_message("r1", "failed", "out of memory") == ("carexpert", "run r1 failed: out of memory")
