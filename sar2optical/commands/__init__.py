"""The command-line programs, one module each: flags, `main`, and `run()` for its console script.

  console script          also                                      runs
  sar2optical-train       train.py                                  training.loop.train
  sar2optical-eval        eval.py                                   evaluation.workflow.evaluate
  sar2optical-predict     predict.py                                inference.translator.load(...).translate_files
  sar2optical-convert     python -m sar2optical.commands.convert    interop.torch_import.convert
  sar2optical-export      python -m sar2optical.commands.export     interop.stablehlo / onnx_graph / torch_export
  sar2optical-split       python -m sar2optical.commands.split      data.splits
  sar2optical-check       python -m sar2optical.commands.check      data.check.check_folder
  sar2optical-build-tfds  python -m sar2optical.commands.build_tfds data.build_tfds.build
  sar2optical-demo-data   python -m sar2optical.commands.demo_data  data.synthetic.generate
  sar2optical-demo        python -m sar2optical.commands.demo       web.page.serve, web.space.write_space ([demo])
  sar2optical-crossval    python -m sar2optical.commands.crossval   evaluation.crossval.crossval

Import one command module per process: train, eval and predict define their flags on import, the others when run.
"""
