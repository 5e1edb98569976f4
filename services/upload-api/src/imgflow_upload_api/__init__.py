"""imgflow_upload_api."""
