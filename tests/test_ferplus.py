import numpy as np
import pytest

from conftest import make_dataset
from ferkit.data import load_dataset, majority_labels, read_ferplus, write_fer2013_csv
from ferkit.errors import DataError
from ferkit.labels import FERPLUS

HEADER = "Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF\n"


def votes(**kw):
    row = dict.fromkeys(
        (
            "neutral",
            "happiness",
            "surprise",
            "sadness",
            "anger",
            "disgust",
            "fear",
            "contempt",
            "unknown",
            "NF",
        ),
        0,
    )
    row.update(kw)
    return np.array([list(row.values())], np.float32)


def test_majority_protocol():
    assert majority_labels(votes(happiness=6, neutral=4))[0] == FERPLUS.index("happiness")
    # 5 of 10 is not a majority ... unless the single votes are dropped first (5 > 4.5).
    assert majority_labels(votes(happiness=5, neutral=4, fear=1))[0] == FERPLUS.index("happiness")
    assert majority_labels(votes(happiness=5, neutral=5))[0] == -1  # tie: no majority
    assert majority_labels(votes(unknown=6, happiness=4))[0] == -1  # top is unknown
    assert majority_labels(votes(NF=10))[0] == -1


def make_pair(tmp_path, rows):
    fer = make_dataset(n_per_class=1)  # 21 rows
    write_fer2013_csv(fer, tmp_path / "fer2013.csv")
    lines = []
    for i, split in enumerate(fer.splits):
        name, v = rows.get(i, (f"fer{i:07d}.png", "10,0,0,0,0,0,0,0,0,0"))
        lines.append(f"{split},{name},{v}")
    (tmp_path / "fer2013new.csv").write_text(HEADER + "\n".join(lines) + "\n")
    return fer


def test_join_filter_and_soft_labels(tmp_path):
    fer = make_pair(
        tmp_path,
        {
            0: ("fer0000000.png", "0,6,2,0,0,0,0,2,0,0"),
            1: ("", "0,0,0,0,0,0,0,0,0,10"),  # not a face: no name
            2: ("fer0000002.png", "3,3,0,0,0,0,0,0,4,0"),  # top is unknown
        },
    )
    ds = load_dataset(tmp_path / "fer2013new.csv")  # finds fer2013.csv beside it
    assert len(ds) == len(fer) - 2
    assert ds.labels[0] == FERPLUS.index("happiness")
    assert np.allclose(ds.soft_labels[0], [0, 0.6, 0.2, 0, 0, 0, 0, 0.2])
    assert np.allclose(ds.soft_labels.sum(1), 1)
    assert (ds.images[0] == fer.images[0]).all() and (ds.images[1] == fer.images[3]).all()
    everything = read_ferplus(tmp_path / "fer2013new.csv", tmp_path / "fer2013.csv", mode="all")
    assert len(everything) == len(fer) - 1


def test_rows_must_pair(tmp_path):
    make_pair(tmp_path, {})
    p = tmp_path / "fer2013new.csv"
    p.write_text("\n".join(p.read_text().splitlines()[:-1]) + "\n")
    with pytest.raises(DataError, match="must pair one-to-one"):
        read_ferplus(p, tmp_path / "fer2013.csv")


def test_bad_votes_row(tmp_path):
    make_pair(tmp_path, {4: ("fer0000004.png", "1,x,0,0,0,0,0,0,0,0")})
    with pytest.raises(DataError, match="line 6: bad vote counts"):
        read_ferplus(tmp_path / "fer2013new.csv", tmp_path / "fer2013.csv")
    ds = read_ferplus(tmp_path / "fer2013new.csv", tmp_path / "fer2013.csv", on_error="skip")
    assert len(ds.skipped) == 1 and len(ds) == 20
