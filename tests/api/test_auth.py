from tests.factories import jsonl, upload, visual_rft_rows


def test_missing_key_is_401_with_openai_error_shape(anon_client):
    r = anon_client.get("/v1/files")
    assert r.status_code == 401
    err = r.json()["error"]
    assert err["code"] == "missing_api_key" and err["type"] == "authentication_error" and err["message"]


def test_invalid_key_is_401(anon_client):
    r = anon_client.get("/v1/fine_tuning/jobs", headers={"Authorization": "Bearer vrft_not-a-real-key"})
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "invalid_api_key"


def test_malformed_header_is_401(anon_client):
    r = anon_client.get("/v1/files", headers={"Authorization": "Basic abc"})
    assert r.status_code == 401


def test_keys_are_stored_hashed(db_session, api_client):
    import sqlalchemy as sa

    from app.auth.models import ApiKey

    key = api_client.headers["Authorization"].split()[1]
    stored = db_session.scalars(sa.select(ApiKey.key_hash)).all()
    assert key not in stored and all(len(h) == 64 for h in stored)


def test_other_projects_objects_answer_404(api_client, other_client):
    file_id = upload(api_client, jsonl(visual_rft_rows(2))).json()["id"]
    assert other_client.get(f"/v1/files/{file_id}").status_code == 404
    assert other_client.get(f"/v1/files/{file_id}/content").status_code == 404
    assert other_client.delete(f"/v1/files/{file_id}").status_code == 404
    assert other_client.get("/v1/files").json()["data"] == []
    assert api_client.get(f"/v1/files/{file_id}").status_code == 200
