"""The labelled-set reader/writer on generated sets: round trips, layouts, and every bad-input message."""
from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
from PIL import Image

from core.emotion.preprocess import crop_face
from core.datasets.labelled import (NOT_A_FACE, SUBJECT_COLUMNS, LabelledFace, LabelledSet, LabelledSetError, normalize_emotion, read_labelled, read_uploads, subject_column,
                                   write_labels_zip)
from core.errors import UserFacingError
from tests.conftest import encode

IMG = encode(np.full((100, 120, 3), 90, np.uint8))  # 120 wide, 100 tall


def make_zip(files: dict[str, bytes | str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


def sample_set() -> LabelledSet:
    return LabelledSet(
        images={"a.png": IMG, "b.png": IMG, "empty.png": IMG},
        faces=[LabelledFace("a.png", (10, 10, 50, 50.5), "happy", True, "sad", 0.41, {"group": "x", "subject": "s1"}),
               LabelledFace("a.png", (60, 10, 100, 50), None, False, "angry", 0.3, {"group": "", "subject": "s1"}),
               LabelledFace("b.png", None, "not_a_face", True, "fear", 0.2, {"group": "y", "subject": "s2"})],
        extra_columns=["group", "subject"])


def problems(data) -> str:
    with pytest.raises(LabelledSetError) as info:
        read_labelled(data)
    assert isinstance(info.value, ValueError)
    assert "Traceback" not in info.value.message
    return info.value.message


def test_round_trip_keeps_everything():
    original = sample_set()
    again = read_labelled(write_labels_zip(original))
    assert again.faces == original.faces
    assert again.extra_columns == ["group", "subject"]
    assert set(again.images) == {"a.png", "b.png", "empty.png"}  # an image with no rows stays in the set
    assert [f.emotion for f in again.labelled_faces()] == ["happy"]  # unreviewed and not-a-face are left out
    assert again.classes() == ["happy"]
    assert (len(again.faces), sum(f.reviewed for f in again.faces), sum(not f.is_face for f in again.faces)) \
        == (3, 2, 1)


def test_csv_header_and_values():
    csv = sample_set().to_csv().decode().splitlines()
    assert csv[0] == "file,x1,y1,x2,y2,emotion,reviewed,predicted,confidence,group,subject"
    assert csv[1] == "a.png,10,10,50,50.5,happy,1,sad,0.4100,x,s1"
    assert csv[3] == "b.png,,,,,not_a_face,1,fear,0.2000,y,s2"


def test_reads_a_folder_and_a_labels_csv_path(tmp_path):
    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs" / "a.png").write_bytes(IMG)
    (tmp_path / "labels.csv").write_text("File,Emotion,Group\nimgs/a.png,Happiness,g1\n")
    for source in (tmp_path, tmp_path / "labels.csv"):
        ls = read_labelled(source)
        assert [(f.file, f.box, f.emotion, f.reviewed, f.extra) for f in ls.faces] == \
            [("imgs/a.png", None, "happy", True, {"group": "g1"})]  # no reviewed column: hand labels count


def test_labels_inside_one_top_folder_and_macos_clutter():
    data = make_zip({"my set/labels.csv": "file,x1,y1,x2,y2,emotion\na.png,1,1,30,30,sad\n",
                     "my set/a.png": IMG, "__MACOSX/my set/._a.png": b"junk", "my set/.DS_Store": b"x"})
    assert [f.file for f in read_labelled(data).faces] == ["a.png"]


def test_semicolon_csv_with_bom_from_a_spreadsheet():
    data = make_zip({"labels.csv": "\ufefffile;x1;y1;x2;y2;emotion\na.png;1;1;30;30;Angry\n".encode("utf-8"),
                     "a.png": IMG})
    assert read_labelled(data).faces[0].emotion == "angry"


def test_class_folders_zip_and_directory(tmp_path):
    data = make_zip({"set/happy/1.png": IMG, "set/sad/2.png": IMG, "set/README.txt": "about"})
    ls = read_labelled(data)
    assert [(f.file, f.emotion, f.box) for f in ls.faces] == [("set/happy/1.png", "happy", None),
                                                               ("set/sad/2.png", "sad", None)]
    for name in ("surprise/x.png", "Fear/y.png"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(IMG)
    assert sorted(f.emotion for f in read_labelled(tmp_path).faces) == ["fear", "surprise"]


def test_other_class_vocabulary():
    data = make_zip({"contempt/1.png": IMG, "happy/2.png": IMG})
    assert "contempt" in problems(data)
    assert read_labelled(data, classes=["happy", "contempt"]).classes() == ["happy", "contempt"]


def test_every_problem_is_named_by_line():
    csv = ("file,x1,y1,x2,y2,emotion,reviewed\n"
           "missing.png,1,1,20,20,happy,1\n"      # line 2: image not in the zip
           "a.png,0,0,500,50,happy,1\n"           # line 3: box outside the 120x100 image
           "a.png,1,1,20,20,joyful,1\n"           # line 4: unknown emotion
           "a.png,1,1,20,20,happy,1\n"            # line 5: fine
           "a.png,1,1,20,20,sad,1\n"              # line 6: duplicate of line 5
           "a.png,30,30,10,40,happy,1\n"          # line 7: x2 < x1
           "a.png,1,1,,20,happy,1\n"              # line 8: incomplete box
           "a.png,5,5,25,25,happy,maybe\n"        # line 9: bad reviewed flag
           "anim.gif,1,1,5,5,happy,1\n")          # line 10: not a supported image
    msg = problems(make_zip({"labels.csv": csv, "a.png": IMG, "anim.gif": b"GIF89a fake"}))
    assert "8 problems" in msg
    for expected in ("line 2 (missing.png): this image is not in the set",
                     "line 3 (a.png): the box (0, 0, 500, 50) is outside the 120×100 image",
                     "line 4 (a.png): emotion 'joyful' is not one of angry",
                     "line 6 (a.png): the same face (same box) is already listed on line 5",
                     "line 7 (a.png): the box (30, 30, 10, 40) needs x2 > x1",
                     "line 8 (a.png): fill all four", "line 9 (a.png): reviewed must be 1 or 0",
                     "line 10 (anim.gif): This is a GIF file, which is not supported"):
        assert expected in msg, expected


def test_whole_file_problems():
    assert "not a zip archive" in problems(b"just some text")
    assert "not a zip archive" in problems(IMG)
    assert "needs the columns 'file' and 'emotion'; it has no column emotion" in \
        problems(make_zip({"labels.csv": "file,label\na.png,happy\n", "a.png": IMG}))
    assert "not inside an emotion folder" in problems(make_zip({"a.png": IMG}))
    assert "none is called labels.csv" in problems(make_zip({"a.csv": "file,emotion\n", "b.csv": "x"}))
    assert "folder 'holiday' is not an emotion" in problems(make_zip({"holiday/a.png": IMG}))
    assert "No labels.csv and no images" in problems(make_zip({"readme.txt": "hi"}))
    assert "damaged" in problems(make_zip({"labels.csv": "x"})[:-30])
    assert "outside the archive" in problems(make_zip({"../evil/labels.csv": "file,emotion\n"}))


def test_box_on_the_edge_is_clipped_not_refused():
    data = make_zip({"labels.csv": "file,x1,y1,x2,y2,emotion\na.png,-0.4,0,120.4,100,happy\n", "a.png": IMG})
    assert read_labelled(data).faces[0].box == (0.0, 0.0, 120.0, 100.0)


def test_exif_rotated_image_uses_oriented_size():
    img = Image.new("RGB", (120, 60))
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90 degrees: the oriented image is 60 wide, 120 tall
    buf = io.BytesIO()
    img.save(buf, "JPEG", exif=exif)
    data = make_zip({"labels.csv": "file,x1,y1,x2,y2,emotion\nr.jpg,0,0,50,110,happy\n", "r.jpg": buf.getvalue()})
    assert read_labelled(data).faces[0].box == (0.0, 0.0, 50.0, 110.0)


def test_crops_use_the_serving_crop():
    ls = read_labelled(write_labels_zip(sample_set()))
    crops = ls.crops(ls.faces, lambda image, box: crop_face(image, box, 0.2))
    assert crops[0].shape == (57, 57, 3)  # 40.5 px box side grown by 20% per side (x1.4), rounded
    assert crops[2].shape == (100, 120, 3)  # no box: the image is the crop


def test_writer_refuses_unsafe_names():
    for name in ("../x.png", "/abs.png", "C:\\x.png", "labels.csv"):
        with pytest.raises(UserFacingError):
            write_labels_zip(LabelledSet(images={name: IMG}, faces=[]))


# ------------------------------------------------------------------------------------- tolerant reading

def test_tolerant_reading_keeps_good_rows_and_names_each_bad_line():
    csv = ("file,emotion,gender,x1,y1,x2,y2,reviewed\n"
           "a.png,HAPPINESS,female,,,,,1\n"          # line 2: fine (an alias)
           "b.png,happpy,male,,,,,1\n"               # line 3: unknown emotion
           "missing.png,sad,male,,,,,yes\n"          # line 4: no such image
           "a.png,sad,female,,,,,1\n"                # line 5: same image, no box, as line 2
           "c.png,Surprised,male,10,10,5,40,1\n"     # line 6: bad box
           "d.png,Afraid,,1,2,30,40,true\n"          # line 7: fine ("afraid" is fear)
           "b.png,Not a face,,1,2,30,40,1\n"         # line 8: a false detection, kept as such
           "c.png,,,,,,,0\n"                          # line 9: not reviewed yet
           "d.png,sad,,40,2,70,40,1\n"               # line 10: a second face of d.png
           "broken.png,sad,,,,,,1\n")                # line 11: the image is damaged
    files = {"labels.csv": csv, "a.png": IMG, "b.png": IMG, "c.png": IMG, "d.png": IMG,
             "broken.png": IMG[:40], "spare.png": b"not an image"}
    ls = read_labelled(make_zip(files), strict=False)
    assert [(f.file, f.emotion, f.line) for f in ls.labelled_faces()] == \
        [("a.png", "happy", 2), ("d.png", "fear", 7), ("d.png", "sad", 10)]
    assert ls.faces[1].box == (1.0, 2.0, 30.0, 40.0) and ls.has_boxes
    assert ls.left_out() == {"not reviewed": 1, "marked not a face": 1}
    messages = [str(p) for p in ls.problems]
    assert messages[0].startswith("labels.csv line 3 (b.png): emotion 'happpy' is not one of angry")
    assert "line 4 (missing.png): this image is not in the set" in messages[1]
    assert "line 5 (a.png): the same image (no box) is already listed on line 2" in messages[2]
    assert "line 6 (c.png): the box (10, 10, 5, 40) needs x2 > x1" in messages[3]
    assert "line 11 (broken.png)" in messages[4] and "damaged" in messages[4]
    assert messages[5].startswith("'spare.png': This file is not an image")  # no rows: named by file
    assert len(messages) == 6 and [p.line for p in ls.problems] == [3, 4, 5, 6, 11, None]
    assert set(ls.images) == {"a.png", "b.png", "c.png", "d.png"}  # unreadable images are not in the set
    with pytest.raises(LabelledSetError, match="6 problems") as info:
        read_labelled(make_zip(files))  # the same set, strictly: refused with every problem listed
    assert info.value.problems == ls.problems


def test_tolerant_reading_still_refuses_an_unusable_whole():
    for data, words in ((b"not a zip", "not a zip archive"),
                        (make_zip({"labels.csv": "name,label\n", "a.png": IMG}), "needs the columns"),
                        (make_zip({"labels.csv": "file,emotion,x1\na.png,happy,1\n"}), "all four box columns")):
        with pytest.raises(LabelledSetError, match=words):
            read_labelled(data, strict=False)


def test_uploads_of_loose_files_match_by_base_name_and_a_zip_can_take_a_separate_csv():
    labels = b"file,emotion,subject,lighting\nimages/a.png,happy,p1,dark\nb.png,sad,p2,bright\n"
    loose = read_uploads([("a.png", IMG), ("b.png", IMG), ("labels.csv", labels)])
    assert [f.file for f in loose.faces] == ["a.png", "b.png"] and loose.subject_column == "subject"
    assert loose.images["a.png"] == IMG
    zipped = read_uploads([("set.zip", make_zip({"set/images/a.png": IMG, "set/images/b.png": IMG})),
                           ("my labels.csv", labels)])
    assert [f.file for f in zipped.faces] == ["set/images/a.png", "set/images/b.png"]
    with pytest.raises(LabelledSetError, match="Add the labels CSV"):
        read_uploads([("a.png", IMG)])
    with pytest.raises(LabelledSetError, match="several zips or CSVs"):
        read_uploads([("a.csv", labels), ("b.csv", labels)])


def test_one_alias_table_one_not_a_face_marker_one_subject_rule():
    assert [normalize_emotion(v) for v in ("Afraid", "scared", "Fearful", "JOY", "Surprised", "anger")] == \
        ["fear", "fear", "fear", "happy", "surprise", "angry"]
    assert {normalize_emotion(v) for v in ("not_a_face", "Not a face", "not-a-face", "NotAFace")} == {NOT_A_FACE}
    assert SUBJECT_COLUMNS == ("subject", "subject_id", "identity", "person", "person_id", "participant")
    assert subject_column(["gender", "participant", "person_id"]) == "person_id"
    assert subject_column(["gender"]) is None


def test_labels_csv_over_the_size_limit_is_refused_before_it_is_read(tmp_path):
    from core import settings

    settings.configure(labels_csv_max_bytes=1000)
    big = "file,emotion\n" + "a.png,happy\n" * 200
    assert "limit is" in problems(make_zip({"labels.csv": big, "a.png": IMG}))
    (tmp_path / "a.png").write_bytes(IMG)
    (tmp_path / "labels.csv").write_text(big)
    assert "at most" in problems(tmp_path)
    with pytest.raises(LabelledSetError, match="at most"):
        read_uploads([("a.png", IMG), ("labels.csv", big.encode())])


def test_a_folder_is_read_when_used_not_up_front(tmp_path, monkeypatch):
    for i in range(5):
        (tmp_path / f"{i}.png").write_bytes(IMG)
    (tmp_path / "labels.csv").write_text("file,emotion\n" + "".join(f"{i}.png,happy\n" for i in range(5)))
    ls = read_labelled(tmp_path)
    assert not isinstance(ls.images, dict)  # a lazy view of the folder, not the bytes
    (tmp_path / "3.png").write_bytes(encode(np.zeros((10, 10, 3), np.uint8)))
    assert ls.images["3.png"] != IMG  # read now, when asked


@pytest.mark.parametrize("encoding, sep", [("utf-16", "\t"), ("utf-16", ","), ("utf-8-sig", ";")])
def test_spreadsheet_exports_in_utf16_or_with_other_separators_are_read(encoding, sep):
    table = sep.join(["file", "emotion"]) + "\r\n" + sep.join(["a.png", "Happiness"]) + "\r\n"
    data = make_zip({"labels.csv": table.encode(encoding), "a.png": IMG})
    assert [(f.file, f.emotion) for f in read_labelled(data).faces] == [("a.png", "happy")]
