"""The fuzzing hook lets through exactly the metadata refusals the models make."""

from progress.models import METADATA_ERRORS
from tests.live.schemathesis_hooks import METADATA_BEYOND_THE_SCHEMA


def test_the_hooks_metadata_messages_are_the_models():
    assert set(METADATA_BEYOND_THE_SCHEMA) == {
        METADATA_ERRORS["integer_out_of_range"],
        METADATA_ERRORS["too_large_merged"],
    }
