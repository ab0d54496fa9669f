import numpy as np

from ferkit.runtime.track import FaceTracker, iou


def test_iou():
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (20, 0, 10, 10)) == 0.0
    assert abs(iou((0, 0, 10, 10), (5, 0, 10, 10)) - 50 / 150) < 1e-9


def test_ids_survive_a_crossing():
    """Two faces move towards each other, overlap, and part: each keeps its ID."""
    tracker = FaceTracker()
    fps, ids = 25.0, []
    for k in range(60):
        t = k / fps
        a = (50 + 8 * k, 100, 60, 60)  # left to right
        b = (530 - 8 * k, 110, 60, 60)  # right to left
        tracks = tracker.update([a, b], None, t)
        ids.append((tracks[0].id, tracks[1].id))
    assert ids[0] == (1, 2)
    assert all(pair == (1, 2) for pair in ids), ids


def test_lost_after_timeout_and_new_id():
    tracker = FaceTracker(max_age=0.5)
    first = tracker.update([(0, 0, 50, 50)], None, 0.0)[0].id
    assert tracker.update([(2, 0, 50, 50)], None, 0.4)[0].id == first
    assert tracker.update([(2, 0, 50, 50)], None, 1.2)[0].id != first  # gone for 0.8 s > 0.5 s


def test_smoothing_reduces_flicker_and_is_frame_rate_independent():
    rng = np.random.default_rng(0)

    def flips(fps, smoothing):
        tracker = FaceTracker(smoothing=smoothing)
        labels = []
        for k in range(int(4 * fps)):
            true = 0 if k < 2 * fps else 1  # the expression changes half way
            p = np.full(3, 0.1)
            p[true] = 0.8
            if rng.random() < 0.3:  # a noisy frame: another label wins
                p = np.roll(p, 1)
            track = tracker.update([(0, 0, 50, 50)], [p], k / fps)[0]
            labels.append(int(np.argmax(track.probs)))
        return sum(a != b for a, b in zip(labels, labels[1:], strict=False))

    raw, smooth = flips(25, 0.0), flips(25, 0.3)
    assert raw > 10 and smooth <= 3  # the script itself changes once
    assert flips(50, 0.3) <= 3  # same time constant at another frame rate


def test_predict_moves_boxes_between_detections():
    tracker = FaceTracker()
    tracker.update([(0, 0, 40, 40)], None, 0.0)
    tracker.update([(10, 0, 40, 40)], None, 0.1)  # 100 px/s to the right
    (track,) = tracker.predict(0.2)
    assert 13 < track.box[0] < 20  # moved on (velocity is smoothed), same ID


def test_predicted_only_tracks_still_expire():
    tracker = FaceTracker(max_age=0.5)
    tracker.update([(0, 0, 40, 40)], None, 0.0)
    assert len(tracker.predict(0.3)) == 1
    assert len(tracker.predict(0.4)) == 1
    assert tracker.predict(0.9) == []  # never detected again: gone after max_age
