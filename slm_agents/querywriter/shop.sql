-- The Query Writer demo database: a small shop. Built deterministically (no random data) by
-- slm_agents.querywriter.db.build_database(); shipped as text, never as a binary file.

CREATE TABLE customers (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    city TEXT NOT NULL,
    country TEXT NOT NULL,
    signup_date TEXT NOT NULL
);

CREATE TABLE products (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    category TEXT NOT NULL,
    price REAL NOT NULL
);

CREATE TABLE orders (
    id INTEGER PRIMARY KEY,
    customer_id INTEGER NOT NULL REFERENCES customers(id),
    order_date TEXT NOT NULL,
    status TEXT NOT NULL,
    total REAL NOT NULL
);

CREATE TABLE order_items (
    order_id INTEGER NOT NULL REFERENCES orders(id),
    product_id INTEGER NOT NULL REFERENCES products(id),
    quantity INTEGER NOT NULL,
    unit_price REAL NOT NULL,
    PRIMARY KEY (order_id, product_id)
);

CREATE TABLE employees (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    department TEXT NOT NULL,
    salary INTEGER NOT NULL,
    hire_date TEXT NOT NULL
);

INSERT INTO customers VALUES
    (1, 'Alice Martin', 'Paris', 'France', '2023-01-15'),
    (2, 'Bruno Rossi', 'Rome', 'Italy', '2023-02-03'),
    (3, 'Chloe Dubois', 'Paris', 'France', '2023-03-22'),
    (4, 'David Smith', 'London', 'United Kingdom', '2023-04-10'),
    (5, 'Emma Schmidt', 'Berlin', 'Germany', '2023-05-05'),
    (6, 'Farid Haddad', 'Lyon', 'France', '2023-06-18'),
    (7, 'Grace Lee', 'London', 'United Kingdom', '2023-07-01'),
    (8, 'Hugo Weber', 'Munich', 'Germany', '2023-08-27'),
    (9, 'Ines Garcia', 'Madrid', 'Spain', '2023-09-09'),
    (10, 'Jonas Berg', 'Berlin', 'Germany', '2023-10-30');

INSERT INTO products VALUES
    (1, 'Espresso Machine', 'Kitchen', 249.0),
    (2, 'Chef Knife', 'Kitchen', 89.5),
    (3, 'Cast Iron Pan', 'Kitchen', 45.0),
    (4, 'Trail Running Shoes', 'Sports', 129.0),
    (5, 'Yoga Mat', 'Sports', 35.0),
    (6, 'Tennis Racket', 'Sports', 150.0),
    (7, 'The Pragmatic Programmer', 'Books', 42.0),
    (8, 'Dune', 'Books', 12.5),
    (9, 'SQL Cookbook', 'Books', 39.0),
    (10, 'Noise-Cancelling Headphones', 'Electronics', 299.0),
    (11, 'E-Reader', 'Electronics', 139.0),
    (12, 'USB-C Charger', 'Electronics', 25.0);

INSERT INTO orders VALUES
    (1, 1, '2024-01-05', 'delivered', 338.5),
    (2, 2, '2024-01-12', 'delivered', 129.0),
    (3, 3, '2024-01-20', 'delivered', 54.5),
    (4, 4, '2024-02-02', 'delivered', 299.0),
    (5, 5, '2024-02-14', 'cancelled', 150.0),
    (6, 1, '2024-02-28', 'delivered', 164.0),
    (7, 6, '2024-03-03', 'delivered', 45.0),
    (8, 7, '2024-03-15', 'shipped', 174.0),
    (9, 8, '2024-03-30', 'shipped', 249.0),
    (10, 9, '2024-04-02', 'pending', 51.5),
    (11, 10, '2024-04-11', 'pending', 139.0),
    (12, 4, '2024-04-19', 'delivered', 70.0),
    (13, 3, '2024-05-01', 'delivered', 388.0),
    (14, 2, '2024-05-09', 'shipped', 35.0);

INSERT INTO order_items VALUES
    (1, 1, 1, 249.0), (1, 2, 1, 89.5),
    (2, 4, 1, 129.0),
    (3, 7, 1, 42.0), (3, 8, 1, 12.5),
    (4, 10, 1, 299.0),
    (5, 6, 1, 150.0),
    (6, 4, 1, 129.0), (6, 5, 1, 35.0),
    (7, 3, 1, 45.0),
    (8, 11, 1, 139.0), (8, 5, 1, 35.0),
    (9, 1, 1, 249.0),
    (10, 9, 1, 39.0), (10, 8, 1, 12.5),
    (11, 11, 1, 139.0),
    (12, 5, 2, 35.0),
    (13, 10, 1, 299.0), (13, 2, 1, 89.0),
    (14, 5, 1, 35.0);

INSERT INTO employees VALUES
    (1, 'Karim Benali', 'Engineering', 72000, '2021-03-01'),
    (2, 'Lena Fischer', 'Engineering', 81000, '2020-07-15'),
    (3, 'Marco Bianchi', 'Sales', 54000, '2022-01-10'),
    (4, 'Nora Jensen', 'Sales', 58000, '2021-11-20'),
    (5, 'Oscar Silva', 'Support', 45000, '2023-02-01'),
    (6, 'Paula Novak', 'Engineering', 90000, '2019-05-06'),
    (7, 'Quentin Moreau', 'Marketing', 61000, '2022-09-12'),
    (8, 'Rita Costa', 'Support', 47000, '2023-06-30');
