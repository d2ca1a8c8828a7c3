"""The fan-out's shared backfills (dashboard/backfills.py) and its order under ASYNC_MODE=threading, in process: a
python-socketio Server (threading) whose sends are recorded, driven by its own objects, no sleeps."""
import threading
import time

import orjson
import socketio

from dashboard.direct import text_frame
from dashboard.fanout import Fanout

M = "coinbase:BTC-USD"


def entry(seq, market=M):
    exchange, _, symbol = market.partition(":")
    return {"exchange": exchange, "symbol": symbol, "bid": "1.50", "received": 1, "seq": seq}


def recording_fanout():
    """(fanout, server, sent as [(eio sid, Engine.IO packet)], reads: the markets whose backfill was read)."""
    server = socketio.Server(async_mode="threading")
    sent, reads = [], []
    server._send_eio_packet = lambda eio_sid, packet: sent.append((eio_sid, packet))

    def backfill(market):
        reads.append(market)
        return {"market": market, "ticks": [entry(len(reads))], "state": None}
    return Fanout(server, backfill), server, sent, reads


def events(sent, eio_sid):
    return [orjson.loads(packet.encode()[2:])[0] for eio, packet in sent if eio == eio_sid]


def test_clients_subscribing_in_one_interval_share_one_encoded_backfill_until_a_flush_sends_what_is_newer():
    fanout, server, sent, reads = recording_fanout()
    sids = [server.manager.connect(f"eio{n}", "/") for n in range(50)]
    for sid in sids:
        fanout.join(sid, [M], backfill=M)
    assert reads == [M] and len(sent) == 50 and fanout.backfills_sent == 50
    assert len({id(packet) for _, packet in sent}) == 1  # the very same Engine.IO packet for every client
    assert orjson.loads(sent[0][1].encode()[2:]) == ["backfill", {"market": M, "ticks": [entry(1)], "state": None}]
    fanout.add(ticks={M: [entry(2)]})
    assert fanout.flush() == 1  # entry 2 went to the 50 clients: a backfill read before it is not shared any more
    late = server.manager.connect("eio50", "/")
    fanout.join(late, [M], backfill=M)
    assert reads == [M, M] and orjson.loads(sent[-1][1].encode()[2:])[1]["ticks"] == [entry(2)]
    fanout.join(server.manager.connect("eio51", "/"), [M], backfill=M)
    assert reads == [M, M]  # shared again
    fanout.first_watcher(M)  # nobody watched it meanwhile: what came since is in its ring only
    fanout.join(server.manager.connect("eio52", "/"), [M], backfill=M)
    assert reads == [M, M, M]
    assert [events(sent, f"eio{n}") for n in (0, 50)] == [["backfill", "batch"], ["backfill"]]


def test_a_backfill_read_while_a_flush_sent_is_not_kept():
    fanout, server, sent, reads = recording_fanout()
    fanout.join(server.manager.connect("eio0", "/"), [M])
    backfill = fanout.backfills.backfill

    def read_while_flushing(market):  # another thread's flush takes what is due in the middle of the first read
        if not reads:
            fanout.add(ticks={M: [entry(9)]})
            fanout.flush()
        return backfill(market)
    fanout.backfills.backfill = read_while_flushing
    fanout.join(server.manager.connect("eio1", "/"), [M], backfill=M)
    assert reads == [M, M]  # read again for the client, after the flush: that copy is kept ...
    fanout.join(server.manager.connect("eio2", "/"), [M], backfill=M)
    assert reads == [M, M]  # ... and shared
    assert events(sent, "eio1") == ["backfill"] and events(sent, "eio0") == ["batch"]


def test_the_backfill_frame_is_built_once_and_written_directly_to_who_can_take_it():
    fanout, server, sent, reads = recording_fanout()
    from dashboard.backfills import SharedBackfills

    class Direct:  # the clients on even numbers take a direct write; the others are busy (queued)
        writes = []

        def write(self, eio_sid, frame):
            self.writes.append((eio_sid, frame))
            return int(eio_sid[3:]) % 2 == 0
    fanout.direct = Direct()
    fanout.backfills = SharedBackfills(server, fanout.backfills.backfill, framed=True)
    for n in range(6):
        fanout.join(server.manager.connect(f"eio{n}", "/"), [M], backfill=M)
    frames = [frame for _, frame in Direct.writes]
    assert len(frames) == 6 and all(frame is frames[0] for frame in frames)
    assert frames[0] == text_frame(b"4" + sent[0][1].encode()[1:].encode())
    assert [eio for eio, _ in sent] == ["eio1", "eio3", "eio5"] and fanout.direct_events == 3 and fanout.direct_packets == 0


def test_under_threading_no_batch_gets_between_a_clients_join_and_its_backfill():
    """A flush that starts while a subscribing client has joined its watch-set's room but has not been sent its
    backfill yet waits for it: the client gets the backfill, then the batch (which it follows)."""
    fanout, server, sent, reads = recording_fanout()
    fanout.join(server.manager.connect("eio0", "/"), [M])  # someone watches M already: a batch is due
    fanout.add(ticks={M: [entry(5)]})
    new = server.manager.connect("eio1", "/")
    flushed, waiting = threading.Event(), threading.Event()
    flusher = threading.Thread(target=lambda: (fanout.flush(), flushed.set()))
    lock = fanout._sending

    class Spy:  # the fan-out's send lock, telling when the flushing thread waits for it
        def __enter__(self):
            if threading.current_thread() is flusher:
                waiting.set()
            lock.acquire()

        def __exit__(self, *exc):
            lock.release()
    fanout._sending = Spy()
    enter_room = server.enter_room

    def entering(sid, room, namespace=None):
        enter_room(sid, room, namespace=namespace)
        if sid == new:  # joined: the flush runs now, before the backfill is sent
            flusher.start()
            deadline = time.monotonic() + 5
            while not (waiting.is_set() or flushed.is_set()):
                assert time.monotonic() < deadline, "the flush neither ran nor waited"
                flushed.wait(0.01)
    server.enter_room = entering
    fanout.join(new, [M], backfill=M)
    assert flushed.wait(5)
    flusher.join(5)
    assert events(sent, "eio1") == ["backfill", "batch"]
    assert events(sent, "eio0") == ["batch"]


def test_a_connects_markets_and_feeds_are_encoded_once_for_every_client_sent_the_same_object():
    fanout, server, sent, reads = recording_fanout()
    status, offer = [{"exchange": "coinbase", "state": "live"}], {"watchlist": [M]}
    for n in range(20):
        sid = server.manager.connect(f"eio{n}", "/")
        fanout.send_shared(sid, "markets", offer)
        fanout.send_shared(sid, "feeds", status)
    assert len(sent) == 40 and len({id(packet) for _, packet in sent}) == 2
    assert orjson.loads(sent[1][1].encode()[2:]) == ["feeds", status]
    changed = [{"exchange": "coinbase", "state": "stale"}]  # a new status: a new object, encoded anew
    fanout.send_shared(server.manager.connect("eio20", "/"), "feeds", changed)
    assert orjson.loads(sent[-1][1].encode()[2:]) == ["feeds", changed]


# --- the pacing rule (dashboard/fanout.Pacing) ---------------------------------------------------------------------
def test_a_round_long_on_the_clock_but_short_in_cpu_time_does_not_lengthen_the_interval():
    """On a core shared with other processes a round's clock time counts theirs too (and grows with the packets'
    size): the pacing reads its CPU time. Seen at 1,000 clients: rounds of 60-870 ms on the clock walked the interval
    up to 1 s while the server used a fifth of its core. Here each round waits 0.8 of the interval off the CPU."""
    fanout, server, sent, reads = recording_fanout()
    rounds = []

    def waiting_round():  # the hub's `before`: off the CPU for 40 ms (as a process not given its core)
        rounds.append(fanout.interval_ms)
        threading.Event().wait(0.04)
    fanout.run(sleep=lambda seconds: None, stopping=lambda: len(rounds) >= 12, before=waiting_round)
    assert rounds == [50] * 12 and fanout.pacing.changes == 0


def test_a_late_wake_up_while_other_processes_had_the_core_does_not_lengthen_the_interval():
    """The task wakes 60 ms late each round, but the kernel says it was ready and not run for longer than that: the
    core went to other processes, not to our own work; the interval stays. The same lateness without that run delay
    (our own green threads or threads kept it) lengthens it."""
    from dashboard.fanout import thread_run_delay
    for delay_per_round, stays in ((0.1, True), (0.0, False)):
        fanout, server, sent, reads = recording_fanout()
        rounds, delay = [], [0.0]

        def late_sleep(seconds):
            delay[0] += delay_per_round
            threading.Event().wait(seconds + 0.06)
        fanout.run(sleep=late_sleep, stopping=lambda: len(rounds) >= 8, before=lambda: rounds.append(
            fanout.interval_ms), run_delay=lambda: delay[0])
        assert (rounds == [50] * 8) is stays, rounds
    assert thread_run_delay() >= 0.0  # this machine's own reading (0.0 where the kernel has none)


def test_a_connect_storm_lengthens_the_interval_and_it_comes_back_once_the_storm_is_over():
    from dashboard.fanout import Pacing
    pacing = Pacing(50)
    elapsed = 0.0
    while elapsed < 3.0:  # 3 s of subscribes: the task wakes late by more than its interval, clients queue
        late = pacing.interval_s * 1.5
        pacing.note(0.004, late, 300, 1000)
        elapsed += pacing.interval_s + late
    storm = pacing.interval_ms
    assert storm >= 400
    elapsed = 0.0
    while pacing.interval_ms > 50:  # then quiet rounds: back down a step every COOL_S
        pacing.note(0.002, 0.001, 0, 1000)
        elapsed += pacing.interval_s
        assert elapsed < 10, f"still at {pacing.interval_ms} ms"
    assert pacing.changes >= 6  # up and down the ladder, a step at a time
