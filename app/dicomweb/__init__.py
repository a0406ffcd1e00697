"""DICOMweb (DICOM PS3.18) for the app: QIDO-RS searches and thumbnails through the guarded outbound client.

Modules: :mod:`.errors` (protocol facts), :mod:`.access` (which credentials a service gets), :mod:`.service`
(QIDO-RS, thumbnail and rendered requests), :mod:`.qido` (DICOM JSON study attributes), :mod:`.images`
(image validation and re-encoding with Pillow), :mod:`.thumbnails` (the fallback chain and its cache).
"""
