"""Every method the deduper records a pair with is one the API and the client can show.

The deduper writes ``duplicate_pairs.method`` from its own enum; the API's response model
and the client's type name the same values as literals (services share no code). A method
added on one side only made every view of such a pair answer 500.
"""

from typing import get_args

from imgflow_client.models import DuplicateMethod as ClientMethod
from imgflow_deduper.decision import Method
from imgflow_upload_api.duplicates.schemas import DuplicateMethod as ApiMethod


def test_the_api_and_the_client_name_every_method_the_deduper_records() -> None:
    recorded = {method.value for method in Method}
    assert set(get_args(ApiMethod)) == recorded
    assert set(get_args(ClientMethod)) == recorded
