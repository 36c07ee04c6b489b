"""SEN1-2 data.

`pairs` finds and splits pairs, `images` decodes them, `augment` fits and augments them,
`sources` reads them from a folder or a TFDS build (`sen1_2`), `pipeline` batches them with
grain. Commands: `split` (split files), `check` (scan a folder), `build_tfds` (ArrayRecord
build), `demo` (the synthetic demo set).
"""
