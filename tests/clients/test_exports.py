import types

import hub_client


def test_all_lists_exactly_the_public_names() -> None:
    public = {
        name
        for name, value in vars(hub_client).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert set(hub_client.__all__) == public
