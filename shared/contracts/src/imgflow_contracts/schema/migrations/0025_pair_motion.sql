-- The motion evidence of a pair (issue 28, stacks10 and stacks11). A pair the geometric
-- check could call a copy is *similar* when its content moves within the frame: the
-- shared cells move apart (``motion``, px at the 512-px features) or the matches the fit
-- left out agree on a second motion (``second_motion``, how many). Until now both were
-- only in the pair's ``basis`` text; as columns the API shows them beside the other
-- signals, and an operator can query them. NULL: not measured (no fit over most of both
-- frames, or a pair stored before this migration). Adding a nullable column without a
-- default rewrites nothing.
ALTER TABLE duplicate_pairs
    ADD COLUMN IF NOT EXISTS motion        real,
    ADD COLUMN IF NOT EXISTS second_motion integer;
ALTER TABLE similar_pairs
    ADD COLUMN IF NOT EXISTS motion        real,
    ADD COLUMN IF NOT EXISTS second_motion integer;
