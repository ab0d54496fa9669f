import numpy as np
import pytest

from ferkit.labels import (
    FER2013,
    FER2013_NO_DISGUST,
    FERPLUS,
    RAFDB,
    apply_variant,
    get_label_set,
    mapping,
    remap,
)


def test_fer2013_order():
    assert FER2013.names == ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
    assert FER2013.index(3) == 3 and FER2013.index("happy") == 3


def test_aliases_and_numbers():
    assert FER2013.index("Happiness") == 3
    assert FER2013.index("anger") == 0
    assert FERPLUS.index("happy") == 1
    assert RAFDB.index(1) == RAFDB.index("surprise") == 0
    assert RAFDB.index("7") == RAFDB.names.index("neutral")


def test_unknown_label_names_the_set():
    with pytest.raises(KeyError, match="unknown label 'bored' for label set fer2013"):
        FER2013.index("bored")
    with pytest.raises(KeyError, match="outside rafdb"):
        RAFDB.index(0)


def test_mapping_between_sets():
    m = mapping(FERPLUS, FER2013)
    assert [FER2013.names[i] for i in m[:7]] == [
        "neutral",
        "happy",
        "surprise",
        "sad",
        "angry",
        "disgust",
        "fear",
    ]
    assert m[FERPLUS.index("contempt")] == -1
    raf = np.arange(7)
    back = remap(remap(raf, RAFDB, FER2013), FER2013, RAFDB)
    assert (back == raf).all()


def test_variants():
    labels = np.array([0, 1, 2, 1, 6])
    keep, new, ls = apply_variant(labels, "no-disgust")
    assert keep.tolist() == [True, False, True, False, True]
    assert ls is FER2013_NO_DISGUST and [ls.names[i] for i in new] == ["angry", "fear", "neutral"]
    keep, new, ls = apply_variant(labels, "merge-disgust")
    assert keep.all() and [ls.names[i] for i in new] == ["angry", "angry", "fear", "angry", "neutral"]
    with pytest.raises(ValueError, match="unknown label variant"):
        apply_variant(labels, "nope")


def test_get_label_set():
    assert get_label_set("rafdb") is RAFDB
    with pytest.raises(KeyError, match="known"):
        get_label_set("affectnet")
