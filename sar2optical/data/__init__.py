"""SEN1-2 data: `pairs` finds and splits pairs, `images` decodes them, `pipeline` batches them."""
