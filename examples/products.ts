/** The shopping API's data and input validation, shared by every framework's example. */
export interface Product {
  readonly id: string;
  readonly name: string;
  readonly price: number;
}

export class ProductStore {
  #products = new Map<string, Product>([
    ['p-1', { id: 'p-1', name: 'Espresso beans, 1 kg', price: 24.5 }],
    ['p-2', { id: 'p-2', name: 'Ceramic pour-over dripper', price: 19 }],
    ['p-3', { id: 'p-3', name: 'Burr grinder', price: 129 }],
  ]);
  #next = 4;

  list(): Product[] {
    return [...this.#products.values()];
  }

  /** The featured products: what the optional-auth route shows everyone. */
  featured(): Product[] {
    return this.list().slice(0, 2);
  }

  get(id: string): Product | undefined {
    return this.#products.get(id);
  }

  add(input: NewProduct): Product {
    const product = { id: `p-${this.#next++}`, ...input };
    this.#products.set(product.id, product);
    return product;
  }
}

export interface NewProduct {
  readonly name: string;
  readonly price: number;
}

/** Returns the new product, or an error message for a 400. */
export function parseNewProduct(body: unknown): NewProduct | string {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    return 'the body must be a JSON object';
  }
  const { name, price } = body as Record<string, unknown>;
  if (typeof name !== 'string' || name.trim() === '' || name.length > 200) {
    return '`name` must be a non-empty string of at most 200 characters';
  }
  if (typeof price !== 'number' || !Number.isFinite(price) || price < 0) {
    return '`price` must be a number >= 0';
  }
  return { name: name.trim(), price };
}
