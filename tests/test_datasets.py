"""Image and label files paired by name (``napari_seg._datasets``)."""

import numpy as np
import pytest

from napari_seg._datasets import (
    images_beside_labels,
    name_key,
    outputs_beside_images,
    pair_files,
    prediction_tail,
)


def touch(folder, *names):
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        np.save(folder / name, np.zeros((2, 2))) if name.endswith(".npy") else (
            folder / name
        ).write_bytes(b"x")
    return folder


def names(pairs):
    return [(i.name, lab.name) for i, lab in pairs]


def test_one_folder_of_images_and_their_labels(tmp_path):
    """BBBC007's layout: NAME.tif beside NAME_labels.tif, other files ignored."""
    touch(tmp_path, "b.tif", "b_labels.tif", "a.tif", "a_labels.png", "a_features.csv",
          "lonely.tif", "orphan_labels.tif", ".hidden.tif")  # fmt: skip
    found = pair_files(tmp_path, tmp_path)
    assert names(found.pairs) == [("a.tif", "a_labels.png"), ("b.tif", "b_labels.tif")]
    assert [p.name for p in found.unpaired_images] == ["lonely.tif"]
    assert [p.name for p in found.unpaired_labels] == ["orphan_labels.tif"]
    assert found.left_out() == [
        "1 image without a label file left out: lonely.tif",
        "1 label file without an image left out: orphan_labels.tif",
    ]
    masks = pair_files(touch(tmp_path / "cp", "x.png", "x_masks.png"), tmp_path / "cp",
                       suffix="_masks")  # fmt: skip
    assert names(masks.pairs) == [("x.png", "x_masks.png")]


def test_two_folders_by_equal_or_suffixed_names(tmp_path):
    images = touch(tmp_path / "images", "a.tif", "b.tif", "brain.nii.gz", "c.npy")
    touch(tmp_path / "masks", "a.png", "b.tif", "brain.nii.gz", "c.npy")
    touch(tmp_path / "labels", "a_labels.tif", "b_labels.tif", "brain_labels.nii.gz")
    equal = pair_files(images, tmp_path / "masks")
    assert names(equal.pairs) == [
        ("a.tif", "a.png"), ("b.tif", "b.tif"), ("brain.nii.gz", "brain.nii.gz"),
        ("c.npy", "c.npy"),
    ]  # fmt: skip
    suffixed = pair_files(images, tmp_path / "labels")
    assert names(suffixed.pairs)[2] == ("brain.nii.gz", "brain_labels.nii.gz")
    assert [p.name for p in suffixed.unpaired_images] == ["c.npy"]
    # what predict wrote beside the images is no image of theirs
    touch(images, "a_labels.tif", "b_probabilities.tif")
    again = pair_files(images, tmp_path / "masks")
    assert [p.name for p in again.unpaired_images] == []
    assert len(again.pairs) == 4


def test_a_labels_folder_that_holds_the_images_too(tmp_path):
    """Given as the labels' folder, a dataset folder gives its NAME_labels files only;
    predictions keyed without predict's tail; probability files passed over."""
    data = touch(tmp_path / "data", "a.tif", "a_labels.tif", "b.tif", "b_labels.tif")
    preds = touch(tmp_path / "pred", "a_labels.tif", "a_probabilities.tif", "b_labels.tif")
    found = pair_files(preds, data, image_suffix="_labels", skip=("_probabilities",))
    assert names(found.pairs) == [
        ("a_labels.tif", "a_labels.tif"),
        ("b_labels.tif", "b_labels.tif"),
    ]
    assert [p.parent.name for p in found.pairs[0]] == ["pred", "data"]
    assert found.unpaired_images == found.unpaired_labels == []


def test_two_files_are_one_pair_whatever_their_names(tmp_path):
    touch(tmp_path, "x.tif", "y.png")
    found = pair_files(tmp_path / "x.tif", tmp_path / "y.png")
    assert found.pairs == [(tmp_path / "x.tif", tmp_path / "y.png")]


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        ("file-folder", "is a file and .* a folder"),
        ("same-no-suffix", "need a name suffix"),
        ("twice", "have the same name 'a'"),
        ("none", r"NAME_labels\.ext or NAME\.ext \(found e\.g\. a\.tif and z\.tif\)"),
    ],
)
def test_clear_errors(tmp_path, layout, message):
    images = touch(tmp_path / "i", "a.tif")
    labels = {
        "file-folder": lambda: images / "a.tif",
        "same-no-suffix": lambda: images,
        "twice": lambda: touch(tmp_path / "l", "a_labels.tif", "a_labels.png"),
        "none": lambda: touch(tmp_path / "l", "z.tif"),
    }[layout]()
    first, second = (labels, images) if layout == "file-folder" else (images, labels)
    suffix = "" if layout == "same-no-suffix" else "_labels"
    with pytest.raises(ValueError, match=message):
        pair_files(first, second, suffix=suffix)


def test_name_key_and_outputs_beside_images(tmp_path):
    assert name_key("a/b.ome.tif") == "b"
    assert name_key("b_labels.nii.gz", "_labels") == "b"
    assert name_key("_labels.tif", "_labels") == "_labels"  # never an empty name
    paths = [tmp_path / n for n in ("a.tif", "a_labels.tif", "a_probabilities.tif",
                                    "b_labels.tif", "b_probabilities.tif", "b_objects.tif",
                                    "c.png", "c_labels.png", "d_probabilities.tif",
                                    "e_objects.tif", "f.nrrd", "f.seg.nrrd", "g-label.nrrd",
                                    "g.nrrd", "h.seg.nrrd")]  # fmt: skip
    assert [p.name for p in outputs_beside_images(paths)] == [
        "a_labels.tif", "a_probabilities.tif", "b_probabilities.tif", "b_objects.tif",
        "c_labels.png", "f.seg.nrrd", "g-label.nrrd",
    ]  # fmt: skip


def test_images_beside_labels(tmp_path):
    paths = [tmp_path / n for n in ("a.tif", "a_labels.png", "b.tif", "c_labels.tif")]
    assert [p.name for p in images_beside_labels(paths)] == ["a.tif"]


def test_object_scores_read_the_objects_files_when_there_are_any(tmp_path):
    labels_only = touch(tmp_path / "l", "a_labels.tif")
    both = touch(tmp_path / "b", "a_labels.tif", "a_objects.tif")
    assert prediction_tail(both, objects=True) == "_objects"
    assert prediction_tail(both, objects=False) == "_labels"
    assert prediction_tail(labels_only, objects=True) == "_labels"
    assert prediction_tail(both / "a_objects.tif", objects=True) == "_labels"  # a file


def test_cell_tracking_challenge_folders_pair_by_the_number_in_the_names(tmp_path):
    """01/t000.tif ... with 01_GT/SEG/man_seg001.tif (some frames annotated), and a
    method's 01_RES/mask001.tif with the same ground truth."""
    images = touch(tmp_path / "01", "t000.tif", "t001.tif", "t002.tif", "t010.tif")
    truth = touch(tmp_path / "01_GT" / "SEG", "man_seg001.tif", "man_seg010.tif")
    found = pair_files(images, truth)
    assert names(found.pairs) == [("t001.tif", "man_seg001.tif"), ("t010.tif", "man_seg010.tif")]
    assert [p.name for p in found.unpaired_images] == ["t000.tif", "t002.tif"]
    assert "pair by the one number in their names" in found.left_out()[0]
    results = touch(tmp_path / "01_RES", "mask001.tif", "mask010.tif")
    assert len(pair_files(results, truth).pairs) == 2
    cellpose = touch(tmp_path / "train", "000_img.png", "000_masks.png", "001_img.png",
                     "001_masks.png")  # fmt: skip
    found = pair_files(cellpose, cellpose, suffix="_masks")
    assert names(found.pairs)[1] == ("001_img.png", "001_masks.png")
    # names that pair win; names with two numbers (or none) never pair by number
    assert not pair_files(touch(tmp_path / "a", "x1.tif", "y.tif"),
                          touch(tmp_path / "b", "x1.tif", "z2.tif")).by_number  # fmt: skip
    with pytest.raises(ValueError, match="no file of"):
        pair_files(touch(tmp_path / "c", "s1_t1.tif"), touch(tmp_path / "d", "m1.tif"))


def test_nnunet_folders_pair_a_case_s_channel_file_with_its_labels(tmp_path):
    """imagesTr/case_001_0000.nii.gz (channel 0 of a case, nnU-Net's naming) with
    labelsTr/case_001.nii.gz; and predict's case_001_0000_labels with the same truth.
    A case stored as several channel files is refused with what to do."""
    images = touch(tmp_path / "imagesTr", "la_003_0000.nii.gz", "la_007_0000.nii.gz",
                   "la_009_0000.nii.gz")  # fmt: skip
    truth = touch(tmp_path / "labelsTr", "la_003.nii.gz", "la_007.nii.gz", "la_010.nii.gz")
    found = pair_files(images, truth)
    assert names(found.pairs) == [("la_003_0000.nii.gz", "la_003.nii.gz"),
                                  ("la_007_0000.nii.gz", "la_007.nii.gz")]  # fmt: skip
    assert [p.name for p in found.unpaired_images] == ["la_009_0000.nii.gz"]
    assert [p.name for p in found.unpaired_labels] == ["la_010.nii.gz"]
    assert not found.by_number
    predicted = touch(tmp_path / "out", "la_003_0000_labels.nii.gz", "la_007_0000_labels.nii.gz")
    assert len(pair_files(predicted, truth, image_suffix="_labels").pairs) == 2
    channels = touch(tmp_path / "brats", "b_001_0000.nii.gz", "b_001_0001.nii.gz")
    message = r"b_001_0000\.nii\.gz, b_001_0001\.nii\.gz are the channels.*no dataset\.json"
    with pytest.raises(ValueError, match=message):
        pair_files(channels, touch(tmp_path / "brats_gt", "b_001.nii.gz"))
    # named in the dataset.json beside the folder: the case pairs by its first file
    (tmp_path / "dataset.json").write_text('{"channel_names": {"0": "T1", "1": "T2"}}')
    found = pair_files(channels, tmp_path / "brats_gt")
    assert names(found.pairs) == [("b_001_0000.nii.gz", "b_001.nii.gz")]
    assert not found.unpaired_images


def test_a_hostile_dataset_json_is_a_one_line_error(tmp_path):
    """dataset.json beside a label folder is read as any config file: bounded in size
    and nesting (a deep nest raised RecursionError), and it must be an object."""
    from napari_seg._dataset_json import dataset_class_names
    from napari_seg.limits import MAX_CONFIG_BYTES

    labels = touch(tmp_path / "labelsTr", "a.nii.gz")
    description = tmp_path / "dataset.json"
    for text, message in [
        ("[1, 2]", "not a dataset description"),
        ('{"labels": ' + "[" * 100_000 + "]" * 100_000 + "}", "nests too deeply"),
        ("{not json", "not valid JSON"),
    ]:
        description.write_text(text)
        with pytest.raises(ValueError, match=message):
            dataset_class_names(labels)
    description.write_bytes(b" " * (MAX_CONFIG_BYTES + 1))
    with pytest.raises(ValueError, match="is larger than"):
        dataset_class_names(labels)
    description.write_text('{"labels": {"0": "background", "1": "scar"}}')
    assert dataset_class_names(labels) == ("background", "scar")
