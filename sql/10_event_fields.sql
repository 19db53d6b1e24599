-- Reading an event's fields: the helpers every rule uses (docs/behaviour.md §1).
--
-- Traps the functions of sql/ avoid on purpose:
-- * text compares by the database's collation, Python by code point: keys are compared
--   COLLATE "C" (bytewise UTF-8, which is code point order);
-- * upper() and lower() follow the collation too (ICU turns 'ı' into 'I'): only ASCII letters
--   are changed, through COLLATE "C";
-- * in Postgres regular expressions \b is a backspace: boundaries are spelled out;
-- * Postgres's timestamptz input takes 'now', 'epoch' and more: times are checked against an
--   ISO-8601 grammar before any cast;
-- * a LANGUAGE sql function of one SELECT, without SET or STRICT, is inlined into its caller's
--   query; the hot paths keep to that, and a comment says where a function cannot be.

-- Python's str.strip(): every character for which str.isspace() is true.
CREATE OR REPLACE FUNCTION ledger_trim(value text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
SELECT btrim(value, E' \t\n\x0b\x0c\r\x1c\x1d\x1e\x1f\u0085\u00a0\u1680\u2000\u2001\u2002'
    || E'\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000')
$$;

-- The first of the names whose metadata value is a non-empty string (explicit column values).
CREATE OR REPLACE FUNCTION ledger_meta_text(
    metadata jsonb, a text, b text DEFAULT NULL, c text DEFAULT NULL
) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
SELECT coalesce(
    CASE WHEN jsonb_typeof(metadata -> a) = 'string' THEN nullif(metadata ->> a, '') END,
    CASE WHEN jsonb_typeof(metadata -> b) = 'string' THEN nullif(metadata ->> b, '') END,
    CASE WHEN jsonb_typeof(metadata -> c) = 'string' THEN nullif(metadata ->> c, '') END)
$$;

-- metadata sent as a JSON string: the object it holds ({} for a blank string), or NULL when it
-- holds anything else or is not JSON Postgres can hold. Rare, hence the exception block.
CREATE OR REPLACE FUNCTION ledger_metadata_from_text(value text) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    parsed jsonb;
BEGIN
    IF ledger_trim(value) = '' THEN
        RETURN '{}';
    END IF;
    parsed := value::jsonb;
    RETURN CASE WHEN jsonb_typeof(parsed) = 'object' THEN parsed END;
EXCEPTION WHEN others THEN
    RETURN NULL;
END
$$;

-- metadata (or its alias payload) as an object: null, "" and a blank string are {}, a string
-- holding an object is that object. NULL when it is anything else (the event is rejected).
CREATE OR REPLACE FUNCTION ledger_metadata_object(value jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
SELECT CASE WHEN value IS NULL THEN '{}'::jsonb ELSE CASE jsonb_typeof(value)
    WHEN 'object' THEN value
    WHEN 'null' THEN '{}'::jsonb
    WHEN 'string' THEN ledger_metadata_from_text(value #>> '{}')
END END
$$;
