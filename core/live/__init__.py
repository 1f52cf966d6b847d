"""Emotions in moving pictures: the live frame-by-frame analyzer with tracking (`tracking`), reading and
sampling video in memory (`video_io`, shared with batch), and whole video files through the live
analyzer (`video_analysis`)."""
