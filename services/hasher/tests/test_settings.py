from imgflow_hasher.settings import HasherSettings


def test_gps_is_not_kept_by_default():
    assert HasherSettings().hasher_keep_gps is False


def test_gps_can_be_kept_by_setting(monkeypatch):
    monkeypatch.setenv("IMGFLOW_HASHER_KEEP_GPS", "true")
    assert HasherSettings().hasher_keep_gps is True
