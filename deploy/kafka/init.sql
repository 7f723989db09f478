-- The demo schema of deploy/kafka/compose.yaml: captured by the `capture` service.
CREATE TABLE customers (
    id serial PRIMARY KEY,
    name text NOT NULL,
    email text NOT NULL,
    balance numeric(12,2) NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE orders (
    id serial PRIMARY KEY,
    customer_id int NOT NULL REFERENCES customers,
    total numeric(12,2) NOT NULL,
    placed_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO customers (name, email, balance) VALUES
    ('Ada Lovelace', 'ada@example.com', 1200.00),
    ('Grace Hopper', 'grace@example.com', 830.50),
    ('Edsger Dijkstra', 'edsger@example.com', 45.25);
INSERT INTO orders (customer_id, total) VALUES (1, 19.99), (2, 5.00), (1, 42.00);
