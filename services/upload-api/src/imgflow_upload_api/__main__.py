"""``python -m imgflow_upload_api``: serve the API with uvicorn."""

from imgflow_upload_api.main import main

main()
