"""BraTS in one place, one module per step of the data's way through weakseg.

- ``reader``: find subject folders (2017 and 2018-2021 namings) and load one subject, with every problem named;
- ``preprocess``: pure array steps (canonical orientation, normalisation, hemisphere cut, P/A slice kinds);
- ``splits``: patient-level train/valid/test split and the labelled-patient draw;
- ``convert``: ``weakseg convert brats``, a BraTS folder -> the converted hemisphere-slice dataset;
- ``dataset``: that dataset's on-disk layout and ``BratsSliceSet``, which reads it for training and scoring;
- ``export``: the converted dataset -> the nnU-Net raw layout (one 2D case per slice);
- ``synthetic``: seeded BraTS-layout volumes for tests and the demo.
"""
