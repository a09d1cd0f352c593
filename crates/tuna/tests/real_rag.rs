//! Retrieval on the real MiniLM and the SQuAD subset (319 paragraphs, 501 questions), with the
//! recall the project promises, on SQLite and (when `TUNA_TEST_POSTGRES` is set) PostgreSQL;
//! and one grounded answer from SmolLM2. Needs scripts/fetch_models.sh (run by scripts/test.sh).

mod common;
use common::{ok, real_model, shared_data, tuna};

#[test]
fn squad_recall_at_5_is_at_least_0_90_on_every_store() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let squad = shared_data("squad_subset/expmrc-squad-dev.json");
    let squad = squad.to_str().unwrap();
    let minilm = real_model("minilm");
    let mut indexes = vec![d.join("squad.db").display().to_string()];
    if let Ok(url) = std::env::var("TUNA_TEST_POSTGRES") {
        let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        c.batch_execute(
            "DROP TABLE IF EXISTS tuna_real_squad_chunks, tuna_real_squad_docs, tuna_real_squad_meta",
        )
        .unwrap();
        indexes.push(format!("{url}#real_squad"));
    }
    let mut first: Option<serde_json::Value> = None;
    for index in &indexes {
        let add = ok(&tuna(
            d,
            &[
                "index",
                "add",
                "--index",
                index,
                "--model",
                minilm.to_str().unwrap(),
                squad,
                "--json",
            ],
        ));
        assert_eq!(add["stats"]["documents"], 319, "{add}");
        let e = ok(&tuna(
            d,
            &[
                "index",
                "eval",
                "--index",
                index,
                "--questions",
                squad,
                "--json",
            ],
        ));
        let r = &e["retrieval"];
        assert_eq!(r["questions"], 501);
        assert!(r["recall_at_5"].as_f64().unwrap() >= 0.90, "{index}: {e}");
        // Both stores scan exactly: the same ranking.
        match &first {
            Some(f) => assert_eq!(f, r, "{index} differs from the first store"),
            None => first = Some(r.clone()),
        }
    }

    let a = ok(&tuna(
        d,
        &[
            "ask",
            "--index",
            &indexes[0],
            "--model",
            real_model("smollm2.gguf").to_str().unwrap(),
            "-k",
            "1",
            "--max-new-tokens",
            "24",
            "What city in Victoria is called the sporting capital of Australia?",
            "--json",
        ],
    ));
    assert!(a["answer"].as_str().unwrap().contains("Melbourne"), "{a}");
    assert!(a["sources"][0]["source"]
        .as_str()
        .unwrap()
        .contains("Victoria_(Australia)"));
}
