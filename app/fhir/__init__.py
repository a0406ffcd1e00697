"""FHIR access for one launch: the client, ImagingStudy and Patient reading, the study list."""
