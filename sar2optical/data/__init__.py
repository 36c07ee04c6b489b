"""SEN1-2 data.

`pairs` finds pairs on disk, `splits` splits them, `resolve` turns a config and a workdir into the
run's split and sources, `images` decodes, `augment` fits and augments, `sources` reads a folder or
a TFDS build (`sen1_2`, `build_tfds`), `pipeline` batches with grain; `check` scans a folder and
`demo` writes the synthetic demo set. Their commands live in `sar2optical.commands`.
"""
