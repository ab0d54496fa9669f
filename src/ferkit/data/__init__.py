"""Datasets: FER-2013 (CSV / tar.gz / images zip), FER+ votes, and any labelled face folder.

Usage::

    from ferkit.data import load_dataset
    ds = load_dataset("fer2013.tar.gz")
    ds.class_counts()
"""

from ferkit.data.dataset import SPLIT_ROLES, FaceDataset
from ferkit.data.fer2013 import read_fer2013_csv, write_fer2013_csv
from ferkit.data.ferplus import majority_labels, read_ferplus
from ferkit.data.folder import read_image_folder, write_image_folder
from ferkit.data.load import detect_format, load_dataset, read_packed, write_packed

__all__ = [
    "SPLIT_ROLES",
    "FaceDataset",
    "detect_format",
    "load_dataset",
    "majority_labels",
    "read_fer2013_csv",
    "read_ferplus",
    "read_image_folder",
    "read_packed",
    "write_fer2013_csv",
    "write_image_folder",
    "write_packed",
]
